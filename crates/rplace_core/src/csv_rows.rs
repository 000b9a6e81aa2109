//! Rows of the official r/place CSV files: 2022 (`timestamp,user_id,pixel_color,coordinate`)
//! and 2023 (`timestamp,user,coordinate,pixel_color`, centred coordinates, circles).
//!
//! The ingest cuts the decompressed text into chunks at line ends and parses chunks in parallel;
//! this module turns one chunk into rows, each either parsed or rejected with its file line and
//! reason. Lines end in LF or CRLF; the coordinate is quoted because it holds commas.

use crate::palette::parse_hex_color;
use crate::timestamp::{parse_timestamp, DATA_EARLIEST_MS, DATA_END_MS};
use std::ops::Range;

/// The format of an official file, told by its header: one per year of r/place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Y2017,
    Y2022,
    Y2023,
}

/// A year's canvas: its final size and where its stored coordinates start. Stored coordinates
/// run `0 .. width` and `0 .. height`; the official ones are the stored plus the origin
/// (2023: the official x runs −1500 .. 1499, stored x = official x + 1500).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Canvas {
    pub width: u16,
    pub height: u16,
    pub origin_x: i32,
    pub origin_y: i32,
}

/// The part of a year's canvas open for placing from a moment on, in stored coordinates
/// (`x0 .. x1`, `y0 .. y1`, exclusive ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// From this timestamp (ms) on; the first of a year's is `i64::MIN`.
    pub from_ms: i64,
    pub x0: u16,
    pub y0: u16,
    pub x1: u16,
    pub y1: u16,
}

/// 2022: a 1000×1000 canvas, 2000×1000 from 2022-04-02 16:24:56 UTC, 2000×2000 from 2022-04-03
/// 19:03:53 UTC.
pub(crate) const EXPANSIONS_2022: [Expansion; 3] = [
    Expansion { from_ms: i64::MIN, x0: 0, y0: 0, x1: 1000, y1: 1000 },
    Expansion { from_ms: 1_648_916_696_000, x0: 0, y0: 0, x1: 2000, y1: 1000 },
    Expansion { from_ms: 1_649_012_633_000, x0: 0, y0: 0, x1: 2000, y1: 2000 },
];

/// 2023, official coordinates: −500..499 square at the start; x to 999 from 2023-07-21
/// 16:00:34 UTC, x from −1000 from 07-22 08:16:19, y from −1000 from 07-22 23:03:10, y to 999
/// from 07-23 18:00:26, x from −1500 from 07-24 02:00:19, x to 1499 from 07-24 17:33:49.
const EXPANSIONS_2023: [Expansion; 7] = [
    Expansion { from_ms: i64::MIN, x0: 1000, y0: 500, x1: 2000, y1: 1500 },
    Expansion { from_ms: 1_689_955_234_000, x0: 1000, y0: 500, x1: 2500, y1: 1500 },
    Expansion { from_ms: 1_690_013_779_000, x0: 500, y0: 500, x1: 2500, y1: 1500 },
    Expansion { from_ms: 1_690_066_990_000, x0: 500, y0: 0, x1: 2500, y1: 1500 },
    Expansion { from_ms: 1_690_135_226_000, x0: 500, y0: 0, x1: 2500, y1: 2000 },
    Expansion { from_ms: 1_690_164_019_000, x0: 0, y0: 0, x1: 2500, y1: 2000 },
    Expansion { from_ms: 1_690_220_029_000, x0: 0, y0: 0, x1: 3000, y1: 2000 },
];

/// 2017: one 1000×1000 canvas throughout.
const EXPANSIONS_2017: [Expansion; 1] = [Expansion { from_ms: i64::MIN, x0: 0, y0: 0, x1: 1000, y1: 1000 }];

/// The headers of the official files, by year: 2017 has Reddit's `tile_placements.csv` and the
/// `place_tiles` mirror (text timestamps), read alike.
pub const KNOWN_HEADERS: [(u16, &str); 4] = [
    (2017, "ts,user,x_coordinate,y_coordinate,color"),
    (2017, "ts,user_hash,x_coordinate,y_coordinate,color"),
    (2022, "timestamp,user_id,pixel_color,coordinate"),
    (2023, "timestamp,user,coordinate,pixel_color"),
];

impl Format {
    /// The years read, oldest first.
    pub const ALL: [Format; 3] = [Format::Y2017, Format::Y2022, Format::Y2023];

    pub fn year(self) -> u16 {
        match self {
            Format::Y2017 => 2017,
            Format::Y2022 => 2022,
            Format::Y2023 => 2023,
        }
    }

    /// The format of year `year`, or why there is none.
    pub fn of_year(year: u16) -> Result<Format, String> {
        Format::ALL.into_iter().find(|f| f.year() == year).ok_or_else(|| {
            let years: Vec<String> = Format::ALL.iter().map(|f| f.year().to_string()).collect();
            format!("no r/place format for the year {year}: rplacevit reads {}", years.join(", "))
        })
    }

    /// The header its files start with.
    pub fn header(self) -> &'static str {
        KNOWN_HEADERS.iter().find(|(year, _)| *year == self.year()).map(|(_, header)| *header).expect("every format has a header")
    }

    pub fn canvas(self) -> Canvas {
        match self {
            Format::Y2017 => Canvas { width: 1000, height: 1000, origin_x: 0, origin_y: 0 },
            Format::Y2022 => Canvas { width: 2000, height: 2000, origin_x: 0, origin_y: 0 },
            Format::Y2023 => Canvas { width: 3000, height: 2000, origin_x: -1500, origin_y: -1000 },
        }
    }

    /// How the canvas grew: the part open from each moment on, in time order.
    pub fn expansions(self) -> &'static [Expansion] {
        match self {
            Format::Y2017 => &EXPANSIONS_2017,
            Format::Y2022 => &EXPANSIONS_2022,
            Format::Y2023 => &EXPANSIONS_2023,
        }
    }

    /// The year's palette, `0xRRGGBB` by palette index: 16 colors in 2017 (the official
    /// indices), 32 in 2022 and 2023 (2022's order; 2023's files name them by value).
    pub fn palette(self) -> &'static [u32] {
        match self {
            Format::Y2017 => &crate::palette::PALETTE_2017_HEX,
            Format::Y2022 | Format::Y2023 => &crate::palette::PALETTE_HEX,
        }
    }

    /// The palette index of white, the color of a fresh canvas.
    pub fn white(self) -> u8 {
        self.palette().iter().position(|&hex| hex == 0xFFFFFF).expect("every palette has white") as u8
    }

    /// The format whose header is `line` (a file's first line, without its line end).
    pub fn detect(line: &[u8]) -> Result<Format, String> {
        let line = header_text(line);
        match KNOWN_HEADERS.iter().find(|(_, header)| header.as_bytes() == line) {
            Some(&(year, _)) => Format::of_year(year),
            None => {
                // The first line of a file that is not CSV at all can be megabytes long.
                const SHOWN: usize = 200;
                let shown = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
                let more = if line.len() > SHOWN { format!("… ({} bytes)", line.len()) } else { String::new() };
                let known: Vec<String> = KNOWN_HEADERS.iter().map(|(year, header)| format!("`{header}` ({year})")).collect();
                Err(format!("wrong header `{shown}{more}`: expected one of the official r/place headers {}", known.join(", ")))
            }
        }
    }
}

/// A first line without a byte-order mark and a CR.
fn header_text(line: &[u8]) -> &[u8] {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Where a row puts its color, in stored coordinates: one pixel, every pixel of an inclusive
/// rectangle (moderation), or every pixel of a circle (moderation, 2023) that is on the canvas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coordinate {
    Pixel { x: u16, y: u16 },
    Rectangle { x1: u16, y1: u16, x2: u16, y2: u16 },
    Circle { x: u16, y: u16, r: u16, width: u16, height: u16 },
}

impl Coordinate {
    /// The pixels it covers, row by row.
    pub fn pixels(self) -> impl Iterator<Item = (u16, u16)> {
        self.rows().flat_map(|(y, x1, x2)| (x1..=x2).map(move |x| (x, y)))
    }

    /// How many pixels it covers.
    pub fn pixel_count(self) -> u64 {
        self.rows().map(|(_, x1, x2)| (x2 - x1 + 1) as u64).sum()
    }

    /// Its pixels as runs `(y, x1, x2)` (inclusive), top to bottom.
    fn rows(self) -> Box<dyn Iterator<Item = (u16, u16, u16)>> {
        match self {
            Coordinate::Pixel { x, y } => Box::new(std::iter::once((y, x, x))),
            Coordinate::Rectangle { x1, y1, x2, y2 } => Box::new((y1..=y2).map(move |y| (y, x1, x2))),
            Coordinate::Circle { x, y, r, width, height } => Box::new(circle_rows(x, y, r, width, height)),
        }
    }
}

/// The cells of a circle: those whose centre lies within distance `r` of the centre cell's
/// (`dx² + dy² ≤ r²`; `r = 0` is the centre alone), clipped to the `width`×`height` canvas, as
/// runs `(y, x1, x2)`. Public parsers of the 2023 data disagree here (`< r²`, `r² − ε`, a
/// midpoint algorithm); this is the one rule rplacevit uses.
pub fn circle_rows(x: u16, y: u16, r: u16, width: u16, height: u16) -> impl Iterator<Item = (u16, u16, u16)> {
    let (cx, cy, r) = (x as i64, y as i64, r as i64);
    (cy - r..=cy + r).filter(move |&row| (0..height as i64).contains(&row)).filter_map(move |row| {
        let dy = row - cy;
        let half = (r * r - dy * dy).isqrt();
        let (x1, x2) = ((cx - half).max(0), (cx + half).min(width as i64 - 1));
        (x1 <= x2).then_some((row as u16, x1 as u16, x2 as u16))
    })
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

/// Parses `chunk`, whole lines of one file whose first line is file line `first_line` (1-based).
///
/// No field of the official format spans lines, so a record that does (an unterminated quote)
/// is not allowed to swallow the rows after it: its first line alone is rejected, and the parse
/// goes on at the next line.
pub fn parse_chunk(chunk: &[u8], first_line: u64, format: Format) -> ParsedChunk {
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
                Ok(true) => match parse_record(&record, format) {
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
fn parse_record(record: &csv::ByteRecord, format: Format) -> Result<(i64, u8, Coordinate), String> {
    let fields = if format == Format::Y2017 { 5 } else { 4 };
    if record.len() != fields {
        return Err(format!("{} fields instead of {fields}", record.len()));
    }
    // 2017: epoch milliseconds (Reddit's file) or text (the mirror).
    let timestamp_ms = if format == Format::Y2017 && !record[0].is_empty() && record[0].iter().all(u8::is_ascii_digit) {
        parse_milliseconds(&record[0])?
    } else {
        parse_timestamp(&record[0])?
    };
    if !(DATA_EARLIEST_MS..DATA_END_MS).contains(&timestamp_ms) {
        return Err(format!(
            "timestamp `{}` is outside the years 2000 to 2099, the times an r/place dataset can hold",
            String::from_utf8_lossy(&record[0])
        ));
    }
    let user_field = match format {
        Format::Y2022 => "user_id",
        Format::Y2017 | Format::Y2023 => "user",
    };
    if record[1].is_empty() {
        return Err(format!("empty {user_field}"));
    }
    // Stored as text: a hash that is not UTF-8 could only be stored altered, and two such hashes
    // could then become one user.
    if std::str::from_utf8(&record[1]).is_err() {
        return Err(format!("{user_field} is not valid UTF-8"));
    }
    let (color, coordinate) = match format {
        Format::Y2017 => return parse_2017_place(record).map(|(color, coordinate)| (timestamp_ms, color, coordinate)),
        Format::Y2022 => (&record[2], &record[3]),
        Format::Y2023 => (&record[3], &record[2]),
    };
    // 2023 uses the 32 colors of 2022 (by value: the palette grew in another order).
    let color = parse_hex_color(color)
        .ok_or_else(|| format!("`{}` is not a color of the {} palette", String::from_utf8_lossy(color), format.year()))?;
    Ok((timestamp_ms, color, parse_coordinate(coordinate, format.canvas())?))
}

/// 2017's `x_coordinate,y_coordinate,color` (fields 2 to 4): a pixel of the 1000×1000 canvas
/// and a palette index 0..15. The mirror has rows with an empty field and rows with x or y =
/// 1000: rejected.
fn parse_2017_place(record: &csv::ByteRecord) -> Result<(u8, Coordinate), String> {
    let canvas = Format::Y2017.canvas();
    for (field, name) in [(2, "x_coordinate"), (3, "y_coordinate"), (4, "color")] {
        if record[field].trim_ascii().is_empty() {
            return Err(format!("empty {name}"));
        }
    }
    let x = parse_position(&record[2], canvas.width, 0, canvas).map_err(|why| format!("x_coordinate: {why}"))?;
    let y = parse_position(&record[3], canvas.height, 0, canvas).map_err(|why| format!("y_coordinate: {why}"))?;
    let text = record[4].trim_ascii();
    let colors = Format::Y2017.palette().len();
    let color = (text.len() <= 2 && text.iter().all(u8::is_ascii_digit))
        .then(|| text.iter().fold(0usize, |acc, &d| acc * 10 + (d - b'0') as usize))
        .filter(|&index| index < colors)
        .ok_or_else(|| format!("color `{}` is not an index of the 2017 palette (0 to {})", String::from_utf8_lossy(text), colors - 1))?;
    Ok((color as u8, Coordinate::Pixel { x, y }))
}

/// Epoch milliseconds, inside the times a dataset can hold.
fn parse_milliseconds(text: &[u8]) -> Result<i64, String> {
    let value = std::str::from_utf8(text).ok().and_then(|t| t.parse::<i64>().ok());
    value
        .filter(|ms| (DATA_EARLIEST_MS..DATA_END_MS).contains(ms))
        .ok_or_else(|| format!("timestamp `{}` is not milliseconds between the years 2000 and 2099", String::from_utf8_lossy(text)))
}

/// A coordinate field in official coordinates (`x,y`, `x1,y1,x2,y2`, or 2023's
/// `{X: x, Y: y, R: r}`), as stored coordinates on `canvas`.
fn parse_coordinate(text: &[u8], canvas: Canvas) -> Result<Coordinate, String> {
    let show = || String::from_utf8_lossy(text).into_owned();
    if let Some(inner) = text.trim_ascii().strip_prefix(b"{").and_then(|t| t.strip_suffix(b"}")) {
        return parse_circle(inner, canvas).map_err(|why| format!("circle `{}`: {why}", show()));
    }
    let mut numbers = [0u16; 4];
    let mut count = 0;
    for part in text.split(|&b| b == b',') {
        if count == 4 {
            return Err(format!("coordinate `{}` has more than 4 numbers (2 or 4 are valid)", show()));
        }
        let (size, origin) = if count % 2 == 0 { (canvas.width, canvas.origin_x) } else { (canvas.height, canvas.origin_y) };
        numbers[count] = parse_position(part, size, origin, canvas).map_err(|why| format!("coordinate `{}`: {why}", show()))?;
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

/// `X: x, Y: y, R: r` (the braces removed): a centre on the canvas and a radius up to the
/// canvas's size; the circle's cells off the canvas are left out.
fn parse_circle(text: &[u8], canvas: Canvas) -> Result<Coordinate, String> {
    let mut values = [None; 3];
    for part in text.split(|&b| b == b',') {
        let part = part.trim_ascii();
        let colon = memchr::memchr(b':', part).ok_or("expected `X: x, Y: y, R: r`")?;
        let (key, value) = (part[..colon].trim_ascii(), &part[colon + 1..]);
        let slot = match key {
            b"X" => 0,
            b"Y" => 1,
            b"R" => 2,
            _ => return Err(format!("unknown key `{}` (X, Y and R are)", String::from_utf8_lossy(key))),
        };
        if values[slot].is_some() {
            return Err(format!("`{}` given twice", String::from_utf8_lossy(key)));
        }
        values[slot] = Some(value);
    }
    let [Some(x), Some(y), Some(r)] = values else { return Err("expected `X: x, Y: y, R: r`".into()) };
    let x = parse_position(x, canvas.width, canvas.origin_x, canvas)?;
    let y = parse_position(y, canvas.height, canvas.origin_y, canvas)?;
    let largest = canvas.width.max(canvas.height);
    let r = parse_position(r, largest, 0, canvas).map_err(|_| format!("the radius must be a whole number from 0 to {}", largest - 1))?;
    Ok(Coordinate::Circle { x, y, r, width: canvas.width, height: canvas.height })
}

/// An official position along an axis of `size` pixels starting at `origin`, as a stored one.
fn parse_position(text: &[u8], size: u16, origin: i32, canvas: Canvas) -> Result<u16, String> {
    let text = text.trim_ascii();
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("`{}` is not a number", String::from_utf8_lossy(text)));
    }
    let magnitude = digits.iter().fold(0i64, |acc, &d| acc * 10 + (d - b'0') as i64);
    let value = if digits.len() < text.len() { -magnitude } else { magnitude };
    let stored = value - origin as i64;
    if !(0..size as i64).contains(&stored) {
        let (first, last) = (origin as i64, origin as i64 + size as i64 - 1);
        return Err(format!("{value} is outside the {}x{} canvas ({first} to {last})", canvas.width, canvas.height));
    }
    Ok(stored as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_the_year_with_crlf_and_bom() {
        assert_eq!(Format::detect(b"timestamp,user_id,pixel_color,coordinate"), Ok(Format::Y2022));
        assert_eq!(Format::detect(b"timestamp,user_id,pixel_color,coordinate\r"), Ok(Format::Y2022));
        assert_eq!(Format::detect(b"\xEF\xBB\xBFtimestamp,user,coordinate,pixel_color"), Ok(Format::Y2023));
        let unknown = Format::detect(b"timestamp,user,pixel_color,coordinate").unwrap_err();
        assert!(KNOWN_HEADERS.iter().all(|(_, header)| unknown.contains(header)), "{unknown}");
        assert_eq!(Format::detect(b"ts,user,x_coordinate,y_coordinate,color"), Ok(Format::Y2017));
        assert_eq!(Format::detect(b"ts,user_hash,x_coordinate,y_coordinate,color\r"), Ok(Format::Y2017));
        for format in Format::ALL {
            assert_eq!(Format::detect(format.header().as_bytes()), Ok(format));
            assert_eq!(Format::of_year(format.year()), Ok(format));
        }
        assert!(Format::of_year(2019).unwrap_err().contains("2017, 2022, 2023"));
        assert_eq!((Format::Y2017.white(), Format::Y2022.white(), Format::Y2023.white()), (0, 31, 31));
    }

    #[test]
    fn parses_pixels_rectangles_and_crlf() {
        let text = b"2022-04-01 12:44:10.315 UTC,abc==,#FF4500,\"42,17\"\r\n2022-04-01 12:44:11 UTC,de,#ffffff,\"10,20,13,22\"\r\n";
        let parsed = parse_chunk(text, 5, Format::Y2022);
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
        let parsed = parse_chunk(text, 3, Format::Y2022);
        assert_eq!(parsed.rejects.len(), 2);
        assert_eq!(parsed.rejects[0].line, 3);
        assert!(parsed.rejects[0].reason.contains("#FF4501"));
        assert_eq!(parsed.rejects[0].text, "2022-04-01 12:44:11.000 UTC,bbbb==,#FF4501,\"43,17\"");
        assert_eq!((parsed.rejects[1].line, parsed.rejects[1].reason.as_str()), (4, "3 fields instead of 4"));
    }

    #[test]
    fn an_unterminated_quote_loses_its_line_only() {
        let text = b"2022-04-01 12:44:10 UTC,a==,#FF4500,\"42,17\r\n2022-04-01 12:44:11 UTC,b==,#FF4500,\"1,2\"\n2022-04-01 12:44:12 UTC,c==,#FF4500,\"3,4\"\n2022-04-01 12:44:13 UTC,d==,#FF4500,\"5,6\n";
        let parsed = parse_chunk(text, 10, Format::Y2022);
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
        let parsed = parse_chunk(b"0000-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n2100-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n2099-12-31 23:59:59.999 UTC,\xff\xfe,#FF4500,\"1,1\"\n2000-01-01 00:00:00 UTC,a,#FF4500,\"1,1\"\n", 2, Format::Y2022);
        assert_eq!(parsed.rows.len(), 1);
        let reasons: Vec<_> = parsed.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert!(reasons[0].1.contains("outside the years 2000 to 2099") && reasons[1].1.contains("outside"), "{reasons:?}");
        assert_eq!(reasons[2], (4, "user_id is not valid UTF-8"));
    }

    #[test]
    fn a_long_wrong_header_is_shown_cut() {
        let error = Format::detect(&[b'x'; 100_000]).unwrap_err();
        assert!(error.len() < 600 && error.contains("(100000 bytes)"), "{error}");
    }

    #[test]
    fn canvases_only_grow_to_the_whole_canvas() {
        for format in Format::ALL {
            let (canvas, open) = (format.canvas(), format.expansions());
            assert_eq!(open[0].from_ms, i64::MIN);
            let last = open[open.len() - 1];
            assert_eq!((last.x0, last.y0, last.x1, last.y1), (0, 0, canvas.width, canvas.height), "{format:?}");
            for pair in open.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                assert!(a.from_ms < b.from_ms && b.x0 <= a.x0 && b.y0 <= a.y0 && b.x1 >= a.x1 && b.y1 >= a.y1, "{format:?}");
                assert!((b.x0, b.y0, b.x1, b.y1) != (a.x0, a.y0, a.x1, a.y1));
            }
        }
        // 2023's first square is official −500..499 both ways.
        let first = Format::Y2023.expansions()[0];
        let origin = (Format::Y2023.canvas().origin_x, Format::Y2023.canvas().origin_y);
        assert_eq!((first.x0 as i32 + origin.0, first.x1 as i32 + origin.0 - 1), (-500, 499));
        assert_eq!((first.y0 as i32 + origin.1, first.y1 as i32 + origin.1 - 1), (-500, 499));
    }

    #[test]
    fn coordinates_are_checked() {
        let canvas = Format::Y2022.canvas();
        assert!(parse_coordinate(b"2000,5", canvas).unwrap_err().contains("2000 is outside the 2000x2000 canvas"));
        assert!(parse_coordinate(b"-1,5", canvas).unwrap_err().contains("outside"));
        assert!(parse_coordinate(b"x,5", canvas).unwrap_err().contains("not a number"));
        assert!(parse_coordinate(b"46,17,47", canvas).unwrap_err().contains("3 numbers"));
        assert_eq!(parse_coordinate(b"13,22,10,20", canvas), Ok(Coordinate::Rectangle { x1: 10, y1: 20, x2: 13, y2: 22 }));
        assert!(parse_coordinate(b"{X: 1, Y: 1, R: 1}", canvas).is_ok());
    }

    #[test]
    fn rows_of_2023_are_centred_with_color_last_and_circles() {
        let text = b"2023-07-20 13:00:26.088 UTC,h1,\"-199,-235\",#FFFFFF\n\
                     2023-07-20 13:00:27 UTC,h2,\"165,461,166,461\",#FFD635\n\
                     2023-07-20 13:00:28 UTC,h3,\"{X: 425, Y: 441, R: 2}\",#ffffff\n\
                     2023-07-20 13:00:29 UTC,h4,\"1500,0\",#FFFFFF\n\
                     2023-07-20 13:00:30 UTC,h5,\"-1500,-1000\",#FF4501\n";
        let parsed = parse_chunk(text, 2, Format::Y2023);
        let coordinates: Vec<_> = parsed.rows.iter().map(|r| r.coordinate).collect();
        assert_eq!(coordinates[0], Coordinate::Pixel { x: 1301, y: 765 });
        assert_eq!(coordinates[1], Coordinate::Rectangle { x1: 1665, y1: 1461, x2: 1666, y2: 1461 });
        assert_eq!(coordinates[2], Coordinate::Circle { x: 1925, y: 1441, r: 2, width: 3000, height: 2000 });
        assert_eq!(coordinates[2].pixel_count(), 13);
        assert_eq!(parsed.rows[1].color, parse_hex_color(b"#FFD635").unwrap());
        let rejects: Vec<_> = parsed.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(rejects.len(), 2, "{rejects:?}");
        assert!(rejects[0].1.contains("1500 is outside the 3000x2000 canvas (-1500 to 1499)"), "{rejects:?}");
        assert_eq!(rejects[1].0, 6);
        assert!(rejects[1].1.contains("not a color of the 2023 palette"), "{rejects:?}");
    }

    #[test]
    fn rows_of_2017_in_milliseconds_or_text_with_their_quirks() {
        let text = b"1491167838000,c2Md9m4QckH8M+lhNh9btgoiFDk=,326,258,0\n\
                     2017-04-03 17:21:15.5 UTC,h2,999,0,15\n\
                     2017-04-03 17:21:16 UTC,h3,,5,3\n\
                     2017-04-03 17:21:17.123 UTC,h4,1000,5,3\n\
                     2017-04-03 17:21:18 UTC,h5,5,1000,3\n\
                     2017-04-03 17:21:19 UTC,h6,5,5,\n\
                     2017-04-03 17:21:20 UTC,h7,5,5,16\n\
                     1491167838000,h8,5,5\n";
        let parsed = parse_chunk(text, 2, Format::Y2017);
        let rows: Vec<_> = parsed.rows.iter().map(|r| (r.line, r.timestamp_ms, r.color, r.coordinate)).collect();
        assert_eq!(
            rows,
            [
                (2, 1_491_167_838_000, 0, Coordinate::Pixel { x: 326, y: 258 }),
                (3, 1_491_240_075_500, 15, Coordinate::Pixel { x: 999, y: 0 })
            ]
        );
        let rejects: Vec<_> = parsed.rejects.iter().map(|r| (r.line, r.reason.as_str())).collect();
        assert_eq!(rejects[0], (4, "empty x_coordinate"));
        assert!(rejects[1].1.contains("x_coordinate: 1000 is outside the 1000x1000 canvas"), "{rejects:?}");
        assert!(rejects[2].1.contains("y_coordinate: 1000 is outside"), "{rejects:?}");
        assert_eq!(rejects[3], (7, "empty color"));
        assert_eq!(rejects[4], (8, "color `16` is not an index of the 2017 palette (0 to 15)"));
        assert_eq!(rejects[5], (9, "4 fields instead of 5"));
    }

    /// Against the rule itself, every cell of the canvas tested, for radii 0 to 6 at the
    /// corners, the edges and inside.
    #[test]
    fn circles_are_the_cells_within_the_radius_clipped_to_the_canvas() {
        let (width, height) = (20u16, 12u16);
        for r in 0..=6u16 {
            for (x, y) in [(0, 0), (19, 11), (0, 6), (10, 0), (10, 6), (3, 10)] {
                let circle = Coordinate::Circle { x, y, r, width, height };
                let got: Vec<(u16, u16)> = circle.pixels().collect();
                let expected: Vec<(u16, u16)> = (0..height)
                    .flat_map(|py| (0..width).map(move |px| (px, py)))
                    .filter(|&(px, py)| {
                        let (dx, dy) = (px as i64 - x as i64, py as i64 - y as i64);
                        dx * dx + dy * dy <= (r as i64).pow(2)
                    })
                    .collect();
                assert_eq!(got, expected, "r={r} at ({x}, {y})");
                assert_eq!(circle.pixel_count(), expected.len() as u64);
            }
        }
    }

    #[test]
    fn circles_are_checked() {
        let canvas = Format::Y2023.canvas();
        assert!(parse_coordinate(b"{X: 1500, Y: 0, R: 1}", canvas).unwrap_err().contains("outside"));
        assert!(parse_coordinate(b"{X: 1, Y: 0}", canvas).unwrap_err().contains("expected"));
        assert!(parse_coordinate(b"{X: 1, Y: 0, R: -2}", canvas).unwrap_err().contains("radius"));
        assert!(parse_coordinate(b"{X: 1, Y: 0, Q: 2}", canvas).unwrap_err().contains("unknown key"));
        assert!(parse_coordinate(b"{X: 1, X: 0, R: 2}", canvas).unwrap_err().contains("twice"));
        assert_eq!(
            parse_coordinate(b"{ X:-1500 ,Y: -1000, R: 0 }", canvas),
            Ok(Coordinate::Circle { x: 0, y: 0, r: 0, width: 3000, height: 2000 })
        );
    }
}
