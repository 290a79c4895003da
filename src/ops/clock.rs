//! Times as operators write and read them: `--since 7d`, `2026-11-01`,
//! RFC 3339; printed as RFC 3339 in UTC.

use super::OpsError;

/// RFC 3339 in UTC, e.g. `2026-11-01T09:30:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses a point in time: a duration back from `now` (`90s`, `30m`,
/// `12h`, `7d`, `2w`), a date (`2026-11-01`, midnight UTC), or an RFC 3339
/// date and time (`2026-11-01T09:30:00Z`, `2026-11-01 09:30:00+02:00`).
pub fn parse_time(text: &str, now: i64) -> Result<i64, OpsError> {
    let text = text.trim();
    let parsed = if text.contains('-') {
        parse_date_time(text)
    } else {
        parse_ago(text).map(|ago| now - ago)
    };
    parsed.ok_or_else(|| {
        OpsError::Usage(format!(
            "`{text}` is not a time: write a duration back from now (7d, 12h, 30m, 2w), \
             a date (2026-11-01) or an RFC 3339 time (2026-11-01T09:30:00Z)"
        ))
    })
}

/// `7d` → seconds.
fn parse_ago(text: &str) -> Option<i64> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// `YYYY-MM-DD` or `YYYY-MM-DD[T ]HH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_date_time(text: &str) -> Option<i64> {
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let days = parse_date(date)?;
    let Some(rest) = rest else {
        return Some(days * 86_400);
    };
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = rest.split_at(zone_at);
    let clock = clock.split('.').next()?;
    let fields = numbers(clock, ':', 3)?;
    let (h, m, s) = (fields[0], fields[1], fields[2]);
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(days * 86_400 + h * 3600 + m * 60 + s - zone_offset(zone)?)
}

fn parse_date(date: &str) -> Option<i64> {
    let fields = numbers(date, '-', 3)?;
    let (year, month, day) = (fields[0], fields[1], fields[2]);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 2026-02-31 would silently become March 3rd.
    (civil_from_days(days) == (year, month as u32, day as u32)).then_some(days)
}

/// Seconds east of UTC of `Z` or `±HH:MM`.
fn zone_offset(zone: &str) -> Option<i64> {
    if zone.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let fields = numbers(&zone[1..], ':', 2)?;
    if fields[0] > 23 || fields[1] > 59 {
        return None;
    }
    Some(sign * (fields[0] * 3600 + fields[1] * 60))
}

/// Exactly `count` decimal numbers separated by `sep`.
fn numbers(text: &str, sep: char, count: usize) -> Option<Vec<i64>> {
    let fields: Vec<i64> = text
        .split(sep)
        .map(|f| {
            (!f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
                .then(|| f.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    (fields.len() == count).then_some(fields)
}

/// Inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_306_455; // 2026-11-22T00:14:15Z

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(NOW), "2026-11-22T00:14:15Z");
    }

    #[test]
    fn parses_every_accepted_form() {
        assert_eq!(parse_time("7d", NOW).unwrap(), NOW - 7 * 86_400);
        assert_eq!(parse_time("12h", NOW).unwrap(), NOW - 12 * 3600);
        assert_eq!(parse_time("2w", NOW).unwrap(), NOW - 14 * 86_400);
        let midnight = parse_time("2026-11-22", NOW).unwrap();
        assert_eq!(rfc3339(midnight), "2026-11-22T00:00:00Z");
        assert_eq!(parse_time("2026-11-22T00:14:15Z", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-22 02:14:15.5+02:00", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2026-11-21T23:14:15-01:00", NOW).unwrap(), NOW);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "7",
            "d",
            "7y",
            "2026-02-31",
            "2026-13-01",
            "2026-11-22T25:00:00Z",
            "2026-11-22T10:00:00",
            "yesterday",
            "2026-11-22T10:00Z",
        ] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?} was accepted");
        }
    }
}
