//! Output formatting shared by the listing commands: aligned tables, Docker's human
//! sizes and "3 days ago" times.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints rows as left-aligned columns separated by three spaces, like Docker.
pub fn print_table(out: &mut impl Write, table: &[Vec<String>]) -> std::io::Result<()> {
    print_table_min_width(out, table, 0)
}

/// Like [`print_table`], every column but the last at least `min` wide (separator
/// included), as Docker's `top` lays out its columns.
pub fn print_table_min_width(
    out: &mut impl Write,
    table: &[Vec<String>],
    min: usize,
) -> std::io::Result<()> {
    let cols = table.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            let longest = table
                .iter()
                .map(|r| r.get(c).map_or(0, |cell| cell.chars().count()))
                .max()
                .unwrap_or(0);
            (longest + 3).max(min)
        })
        .collect();
    for row in table {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!(
                    "{cell:<w$}",
                    w = widths.get(c).copied().unwrap_or(0)
                ));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Sizes as Docker prints them: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + units[u]
    }
}

/// "3 days ago" from an RFC 3339 time.
pub fn since(rfc3339: &str) -> String {
    let Some(t) = parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let secs = (now - t).max(0);
    let (n, unit) = match secs {
        s if s < 60 => return "Less than a minute ago".to_string(),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86_400 => (s / 3600, "hour"),
        s if s < 14 * 86_400 => (s / 86_400, "day"),
        s if s < 60 * 86_400 => (s / (7 * 86_400), "week"),
        s if s < 730 * 86_400 => (s / (30 * 86_400), "month"),
        s => (s / (365 * 86_400), "year"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let num = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let rest = s.get(19..)?;
    let rest = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "Z" | "z" | "" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let hh = o.get(1..3)?.parse::<i64>().ok()?;
            let mm = o.get(4..6)?.parse::<i64>().ok()?;
            sign * (hh * 3600 + mm * 60)
        }
    };
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// An RFC 3339 time as Go's `time.Time.String` prints it in UTC, the way `ps`
/// templates show `CreatedAt`: `2024-01-02 03:04:05 +0000 UTC`.
pub fn docker_time(rfc3339: &str) -> String {
    let Some(secs) = parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} +0000 UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// "Up 5 minutes" style duration between two epoch-second times, as `docker ps` shows.
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 1 => "Less than a second".to_string(),
        s if s < 60 => format!("{s} second{}", if s == 1 { "" } else { "s" }),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 48 * 3600 => plural(s / 3600, "hour"),
        s if s < 14 * 86_400 => plural(s / 86_400, "day"),
        s if s < 60 * 86_400 => plural(s / (7 * 86_400), "week"),
        s if s < 730 * 86_400 => plural(s / (30 * 86_400), "month"),
        s => plural(s / (365 * 86_400), "year"),
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("About a{} {unit}", if unit == "hour" { "n" } else { "" })
    } else {
        format!("{n} {unit}s")
    }
}

/// Seconds since the epoch now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(7_800_000), "7.8MB");
        assert_eq!(human_size(1_234_567_890), "1.235GB");
        assert_eq!(parse_rfc3339("1970-01-02T00:00:00Z"), Some(86_400));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.123456789+01:00"),
            Some(1_709_204_400)
        );
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(7200), "2 hours");
        assert_eq!(
            docker_time("2024-02-29T12:00:00.5+01:00"),
            "2024-02-29 11:00:00 +0000 UTC"
        );
        assert_eq!(
            docker_time("1970-01-01T00:00:00Z"),
            "1970-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            docker_time("2023-12-31T23:59:59Z"),
            "2023-12-31 23:59:59 +0000 UTC"
        );
    }
}
