//! Timestamps of the official files (`2022-04-01 12:44:10.315 UTC`) to and from integer
//! milliseconds since the Unix epoch, UTC. Written by hand: it runs once per row and a general
//! date library would cost more than the rest of the parse.

/// 2000-01-01 00:00:00 UTC: no r/place data is older. Ingest accepts timestamps from here…
pub const DATA_EARLIEST_MS: i64 = 946_684_800_000;
/// …up to, not including, 2100-01-01 00:00:00 UTC.
pub const DATA_END_MS: i64 = 4_102_444_800_000;

/// Milliseconds since the Unix epoch of `YYYY-MM-DD HH:MM:SS[.fff] UTC`.
///
/// The fraction may have 1 to 9 digits (a decimal fraction of a second, truncated to the
/// millisecond); the official data omits it when the milliseconds are zero.
pub fn parse_timestamp(text: &[u8]) -> Result<i64, String> {
    let fail = |why: &str| format!("`{}` is not a timestamp of the form YYYY-MM-DD HH:MM:SS[.fff] UTC{why}", String::from_utf8_lossy(text));
    let [year, month, day, hour, minute, second, millis] = fields(text).ok_or_else(|| fail(""))?;
    if !(1..=12).contains(&month) {
        return Err(fail(&format!(": month {month} does not exist")));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(fail(&format!(": day {day} does not exist in that month")));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(fail(": time of day out of range"));
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// The numbers of a timestamp (milliseconds last), or `None` when the text has the wrong shape.
/// Runs once per row of a 160-million-row file: plain byte arithmetic, no allocation.
fn fields(text: &[u8]) -> Option<[i64; 7]> {
    let body = text.strip_suffix(b" UTC")?;
    if body.len() < 19 || body[4] != b'-' || body[7] != b'-' || body[10] != b' ' || body[13] != b':' || body[16] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        body[range].iter().try_fold(0i64, |acc, &d| {
            let digit = d.wrapping_sub(b'0');
            (digit <= 9).then_some(acc * 10 + digit as i64)
        })
    };
    let mut millis = 0;
    if body.len() > 19 {
        let fraction = &body[20..];
        if body[19] != b'.' || fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        millis = number(20..body.len())? * 1000 / 10i64.pow(fraction.len() as u32);
    }
    Some([number(0..4)?, number(5..7)?, number(8..10)?, number(11..13)?, number(14..16)?, number(17..19)?, millis])
}

/// The official text of a timestamp in milliseconds: the fraction only when it is not zero.
pub fn format_timestamp(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, millis) = (in_day / 1000 % 60, in_day % 1000);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
    } else {
        format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{millis:03} UTC")
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (if month <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_with_and_without_fraction() {
        // 2022-04-01 12:44:10 UTC is 1648817050 s (checked with `date -u -d`).
        assert_eq!(parse_timestamp(b"2022-04-01 12:44:10 UTC"), Ok(1_648_817_050_000));
        assert_eq!(parse_timestamp(b"2022-04-01 12:44:10.315 UTC"), Ok(1_648_817_050_315));
        assert_eq!(parse_timestamp(b"2022-04-01 12:44:10.5 UTC"), Ok(1_648_817_050_500));
        assert_eq!(parse_timestamp(b"2022-04-01 12:44:10.31 UTC"), Ok(1_648_817_050_310));
        assert_eq!(parse_timestamp(b"1970-01-01 00:00:00 UTC"), Ok(0));
        assert_eq!(parse_timestamp(b"2000-02-29 00:00:00 UTC"), Ok(951_782_400_000));
        assert_eq!(parse_timestamp(b"2000-01-01 00:00:00 UTC"), Ok(DATA_EARLIEST_MS));
        assert_eq!(parse_timestamp(b"2100-01-01 00:00:00 UTC"), Ok(DATA_END_MS));
    }

    #[test]
    fn rejects_impossible_dates() {
        for bad in [
            &b"2022-13-01 12:44:15.000 UTC"[..],
            b"2022-02-30 00:00:00 UTC",
            b"2022-04-01 24:00:00 UTC",
            b"2022-04-01 12:44:10",
            b"2022-04-01T12:44:10 UTC",
            b"2022-04-01 12:44:10. UTC",
            b"garbage",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse_timestamp(b"2022-13-01 12:44:15.000 UTC").unwrap_err().contains("month 13"));
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_648_817_050_000, 1_648_817_050_315, 1_649_116_800_001, 951_782_400_000] {
            assert_eq!(parse_timestamp(format_timestamp(ms).as_bytes()), Ok(ms));
        }
        assert_eq!(format_timestamp(1_648_817_050_000), "2022-04-01 12:44:10 UTC");
        assert_eq!(format_timestamp(1_648_817_050_315), "2022-04-01 12:44:10.315 UTC");
    }
}
