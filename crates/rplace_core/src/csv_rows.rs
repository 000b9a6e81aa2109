//! Rows of the official r/place 2022 CSV (`timestamp,user_id,pixel_color,coordinate`).
//!
//! The ingest cuts the decompressed text into chunks at line ends and parses chunks in parallel;
//! this module turns one chunk into rows, each either parsed or rejected with its file line and
//! reason. Lines end in LF or CRLF; the coordinate is quoted because it holds commas.

use crate::palette::parse_hex_color;
use crate::timestamp::{parse_timestamp, DATA_EARLIEST_MS, DATA_END_MS};
use crate::CANVAS_SIZE;
use std::ops::Range;

/// The header every input file starts with.
pub const HEADER: &str = "timestamp,user_id,pixel_color,coordinate";

/// Where a row puts its color: one pixel, or every pixel of an inclusive rectangle (moderation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coordinate {
    Pixel { x: u16, y: u16 },
    Rectangle { x1: u16, y1: u16, x2: u16, y2: u16 },
}

impl Coordinate {
    /// The pixels it covers, row by row.
    pub fn pixels(self) -> impl Iterator<Item = (u16, u16)> {
        let (x1, y1, x2, y2) = match self {
            Coordinate::Pixel { x, y } => (x, y, x, y),
            Coordinate::Rectangle { x1, y1, x2, y2 } => (x1, y1, x2, y2),
        };
        (y1..=y2).flat_map(move |y| (x1..=x2).map(move |x| (x, y)))
    }

    /// How many pixels it covers.
    pub fn pixel_count(self) -> u64 {
        match self {
            Coordinate::Pixel { .. } => 1,
            Coordinate::Rectangle { x1, y1, x2, y2 } => (x2 - x1 + 1) as u64 * (y2 - y1 + 1) as u64,
        }
    }
}

/// A valid row; `user` is the byte range of the user hash in [`ParsedChunk::users`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub timestamp_ms: i64,
    pub user: Range<usize>,
    pub color: u8,
    pub coordinate: Coordinate,
}

/// A row that could not be used, with its raw text (without the line end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    pub line: u64,
    pub reason: String,
    pub text: String,
}

/// The rows of one chunk, in file order.
#[derive(Debug, Default)]
pub struct ParsedChunk {
    pub rows: Vec<Row>,
    pub rejects: Vec<Reject>,
    /// The user hashes of `rows`, end to end (one buffer instead of an allocation per row).
    pub users: Vec<u8>,
}

/// Checks a file's first line (without its line end).
pub fn check_header(line: &[u8]) -> Result<(), String> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line == HEADER.as_bytes() {
        return Ok(());
    }
    // The first line of a file that is not CSV at all can be megabytes long.
    const SHOWN: usize = 200;
    let shown = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
    let more = if line.len() > SHOWN { format!("… ({} bytes)", line.len()) } else { String::new() };
    Err(format!("wrong header `{shown}{more}`: expected `{HEADER}` (the official r/place 2022 format)"))
}

/// Parses `chunk`, whole lines of one file whose first line is file line `first_line` (1-based).
///
/// No field of the official format spans lines, so a record that does (an unterminated quote)
/// is not allowed to swallow the rows after it: its first line alone is rejected, and the parse
/// goes on at the next line.
pub fn parse_chunk(chunk: &[u8], first_line: u64) -> ParsedChunk {
    let mut record = csv::ByteRecord::new();
    let mut parsed = ParsedChunk::default();
    // Line numbers are counted here: the csv crate's own count ignores CR-LF line ends.
    // `counted_to` is the byte (of `chunk`) up to which lines are counted.
    let (mut line, mut counted_to) = (first_line, 0);
    // Where the current reader started: a broken line restarts the reader past it.
    let mut base = 0;
    'readers: while base < chunk.len() {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&chunk[base..]);
        loop {
            let more = reader.read_byte_record(&mut record);
            let end = base + reader.position().byte() as usize;
            let mut start = record.position().map_or(counted_to, |p| base + p.byte() as usize).clamp(counted_to, end);
            // After a CR-LF record the reader stops between CR and LF: the record starts past it.
            while start < end && matches!(chunk[start], b'\r' | b'\n') {
                start += 1;
            }
            line += memchr::memchr_iter(b'\n', &chunk[counted_to..start]).count() as u64;
            counted_to = start;
            let body = chunk[start..end].trim_ascii_end();
            let newline = memchr::memchr(b'\n', body);
            if matches!(more, Ok(true) | Err(_)) && (newline.is_some() || memchr::memchr_iter(b'"', body).count() % 2 == 1) {
                let reason = "unterminated quote: a quoted field runs past the end of the line".to_string();
                parsed.rejects.push(reject(chunk, start..newline.map_or(end, |n| start + n), line, reason));
                base = newline.map_or(end, |n| start + n + 1);
                continue 'readers;
            }
            match more {
                Ok(false) => break 'readers,
                Ok(true) => match parse_record(&record) {
                    Ok((timestamp_ms, color, coordinate)) => {
                        let user = parsed.users.len()..parsed.users.len() + record[1].len();
                        parsed.users.extend_from_slice(&record[1]);
                        parsed.rows.push(Row { line, timestamp_ms, user, color, coordinate })
                    }
                    Err(reason) => parsed.rejects.push(reject(chunk, start..end, line, reason)),
                },
                // Only invalid UTF-8 in a header-less byte reader can get here; report and go on.
                Err(error) => parsed.rejects.push(reject(chunk, start..end, line, error.to_string())),
            }
        }
    }
    parsed
}

fn reject(chunk: &[u8], bytes: Range<usize>, line: u64, reason: String) -> Reject {
    let raw = &chunk[bytes.start..bytes.end.min(chunk.len())];
    let text = String::from_utf8_lossy(raw).trim_end_matches(['\r', '\n']).to_string();
    Reject { line, reason, text }
}

/// One record: (timestamp ms, palette index, coordinate); the user hash is checked, not copied.
fn parse_record(record: &csv::ByteRecord) -> Result<(i64, u8, Coordinate), String> {
    if record.len() != 4 {
        return Err(format!("{} fields instead of 4", record.len()));
    }
    let timestamp_ms = parse_timestamp(&record[0])?;
    if !(DATA_EARLIEST_MS..DATA_END_MS).contains(&timestamp_ms) {
        return Err(format!(
            "timestamp `{}` is outside the years 2000 to 2099, the times an r/place dataset can hold",
            String::from_utf8_lossy(&record[0])
        ));
    }
    if record[1].is_empty() {
        return Err("empty user_id".to_string());
    }
    // Stored as text: a hash that is not UTF-8 could only be stored altered, and two such hashes
    // could then become one user.
    if std::str::from_utf8(&record[1]).is_err() {
        return Err("user_id is not valid UTF-8".to_string());
    }
    let color = parse_hex_color(&record[2])
        .ok_or_else(|| format!("`{}` is not a color of the 2022 palette", String::from_utf8_lossy(&record[2])))?;
    Ok((timestamp_ms, color, parse_coordinate(&record[3])?))
}

fn parse_coordinate(text: &[u8]) -> Result<Coordinate, String> {
    let show = || String::from_utf8_lossy(text).into_owned();
    let mut numbers = [0u16; 4];
    let mut count = 0;
    for part in text.split(|&b| b == b',') {
        if count == 4 {
            return Err(format!("coordinate `{}` has more than 4 numbers (2 or 4 are valid)", show()));
        }
        numbers[count] = parse_position(part).map_err(|why| format!("coordinate `{}`: {why}", show()))?;
        count += 1;
    }
    match count {
        2 => Ok(Coordinate::Pixel { x: numbers[0], y: numbers[1] }),
        4 => {
            let [xa, ya, xb, yb] = numbers;
            Ok(Coordinate::Rectangle { x1: xa.min(xb), y1: ya.min(yb), x2: xa.max(xb), y2: ya.max(yb) })
        }
        n => Err(format!("coordinate `{}` has {n} numbers (only 2 or 4 are valid)", show())),
    }
}

/// A pixel position on the 2000×2000 canvas.
fn parse_position(text: &[u8]) -> Result<u16, String> {
    let text = text.trim_ascii();
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("`{}` is not a number", String::from_utf8_lossy(text)));
    }
    let value = digits.iter().fold(0u32, |acc, &d| acc * 10 + (d - b'0') as u32);
    if digits.len() < text.len() || value >= CANVAS_SIZE as u32 {
        return Err(format!("{} is outside the {CANVAS_SIZE}x{CANVAS_SIZE} canvas", String::from_utf8_lossy(text)));
    }
    Ok(value as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_accepts_crlf_and_bom_only() {
        assert!(check_header(HEADER.as_bytes()).is_ok());
        assert!(check_header(b"timestamp,user_id,pixel_color,coordinate\r").is_ok());
        assert!(check_header(b"\xEF\xBB\xBFtimestamp,user_id,pixel_color,coordinate").is_ok());
        assert!(check_header(b"timestamp,user,pixel_color,coordinate").is_err());
    }

    #[test]
    fn parses_pixels_rectangles_and_crlf() {
        let text = b"2022-04-01 12:44:10.315 UTC,abc==,#FF4500,\"42,17\"\r\n2022-04-01 12:44:11 UTC,de,#ffffff,\"10,20,13,22\"\r\n";
        let parsed = parse_chunk(text, 5);
        assert!(parsed.rejects.is_empty(), "{:?}", parsed.rejects);
        assert_eq!(parsed.rows.len(), 2);
        let first = &parsed.rows[0];
        assert_eq!((first.line, first.timestamp_ms, first.color), (5, 1_648_817_050_315, 2));
        assert_eq!(&parsed.users[first.user.clone()], b"abc==");
        assert_eq!(first.coordinate, Coordinate::Pixel { x: 42, y: 17 });
        let second = &parsed.rows[1];
        assert_eq!((second.line, &parsed.users[second.user.clone()]), (6, &b"de"[..]));
        assert_eq!(second.coordinate.pixels().count(), 12);
        assert_eq!(second.coordinate.pixels().next(), Some((10, 20)));
        assert_eq!(second.coordinate.pixels().nth(4), Some((10, 21)));
    }

    #[test]
    fn rejects_carry_line_reason_and_text() {
        let text = b"2022-04-01 12:44:11.000 UTC,bbbb==,#FF4501,\"43,17\"\n2022-04-01 12:44:16.000 UTC,gggg==,#FF4500\n";
        let parsed = parse_chunk(text, 3);
        assert_eq!(parsed.rejects.len(), 2);
        assert_eq!(parsed.rejects[0].line, 3);
        assert!(parsed.rejects[0].reason.contains("#FF4501"));
        assert_eq!(parsed.rejects[0].text, "2022-04-01 12:44:11.000 UTC,bbbb==,#FF4501,\"43,17\"");
        assert_eq!((parsed.rejects[1].line, parsed.rejects[1].reason.as_str()), (4, "3 fields instead of 4"));
    }

    #[test]
    fn an_unterminated_quote_loses_its_line_only() {
        let text = b"2022-04-01 12:44:10 UTC,a==,#FF4500,\"42,17\r\n2022-04-01 12:44:11 UTC,b==,#FF4500,\"1,2\"\n2022-04-01 12:44:12 UTC,c==,#FF4500,\"3,4\"\n2022-04-01 12:44:13 UTC,d==,#FF4500,\"5,6\n";
        let parsed = parse_chunk(text, 10);
        assert_eq!(
            parsed.rows.iter().map(|r| (r.line, r.coordinate)).collect::<Vec<_>>(),
            [(11, Coordinate::Pixel { x: 1, y: 2 }), (12, Coordinate::Pixel { x: 3, y: 4 })]
        );
        assert_eq!(parsed.rejects.len(), 2);
        assert_eq!((parsed.rejects[0].line, parsed.rejects[0].text.as_str()), (10, "2022-04-01 12:44:10 UTC,a==,#FF4500,\"42,17"));
        assert!(parsed.rejects[0].reason.contains("unterminated quote"), "{}", parsed.rejects[0].reason);
        assert_eq!(parsed.rejects[1].line, 13);
    }

    #[test]
    fn times_outside_the_window_and_hashes_not_utf8_are_rejected() {
        let parsed = parse_chunk(b"0000-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n2100-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n2099-12-31 23:59:59.999 UTC,\xff\xfe,#FF4500,\"1,1\"\n2000-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n", 2);
        assert_eq!(parsed.rows.len(), 1);
        let reasons: Vec<_> = parsed.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert!(reasons[0].1.contains("outside the years 2000 to 2099") && reasons[1].1.contains("outside"), "{reasons:?}");
        assert_eq!(reasons[2], (4, "user_id is not valid UTF-8"));
    }

    #[test]
    fn a_long_wrong_header_is_shown_cut() {
        let error = check_header(&[b'x'; 100_000]).unwrap_err();
        assert!(error.len() < 400 && error.contains("(100000 bytes)"), "{error}");
    }

    #[test]
    fn coordinates_are_checked() {
        assert!(parse_coordinate(b"2000,5").unwrap_err().contains("outside"));
        assert!(parse_coordinate(b"-1,5").unwrap_err().contains("outside"));
        assert!(parse_coordinate(b"x,5").unwrap_err().contains("not a number"));
        assert!(parse_coordinate(b"46,17,47").unwrap_err().contains("3 numbers"));
        assert_eq!(parse_coordinate(b"13,22,10,20"), Ok(Coordinate::Rectangle { x1: 10, y1: 20, x2: 13, y2: 22 }));
    }
}
