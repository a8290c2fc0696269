//! Output formatting shared by the listing commands: aligned tables, `--format`
//! (`table`, `json`, Go templates), Docker's human sizes and "3 days ago" times.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::Value;

use crate::template::{docker_format, Template, TemplateError};

/// Docker's tabwriter: cells padded by three spaces to at least ten columns.
const MIN_CELL: usize = 10;

/// Prints rows as left-aligned columns separated by at least three spaces and at
/// least ten wide, like Docker's tabwriter.
pub fn print_table(out: &mut impl Write, table: &[Vec<String>]) -> std::io::Result<()> {
    print_table_min_width(out, table, MIN_CELL)
}

/// A listing's rows ready for `--format`: each row the object templates see (what
/// `{{json .}}` prints), the column header of each field, and the default table.
pub struct Listing<'a> {
    /// The template behind `--format table` (Docker's default columns).
    pub default_table: &'a str,
    /// Field name → column header, for `table TEMPLATE`.
    pub headers: &'a [(&'a str, &'a str)],
    /// One object per row.
    pub rows: Vec<Value>,
}

/// Methods a listing offers on row `i` (`{{.Label "app"}}` in `ps`).
pub type RowMethods<'a> = &'a dyn Fn(usize, &str, &[Value]) -> Option<Result<Value, TemplateError>>;

impl Listing<'_> {
    /// Prints the rows as `format` says: `table` (the default columns), `json` (one
    /// object per line, as `{{json .}}`), `table TEMPLATE` (columns with headers) or
    /// a template, one line per row.
    pub fn print(&self, out: &mut impl Write, format: &str) -> anyhow::Result<()> {
        self.print_with(out, format, &|_, _, _| None)
    }

    /// Like [`Listing::print`], with `methods` callable on each row.
    pub fn print_with(
        &self,
        out: &mut impl Write,
        format: &str,
        methods: RowMethods<'_>,
    ) -> anyhow::Result<()> {
        let format = match format {
            "" | "table" => self.default_table,
            "json" => "{{json .}}",
            other => other,
        };
        let (table, body) = docker_format(format);
        let template = Template::parse(&body).context("parsing --format")?;
        let mut lines = Vec::with_capacity(self.rows.len() + 1);
        if table {
            let headers: serde_json::Map<String, Value> = self
                .headers
                .iter()
                .map(|(f, h)| (f.to_string(), Value::String(h.to_string())))
                .collect();
            // Methods have no header of their own, as in Docker.
            let blank = |_: &str, _: &[Value]| Some(Ok(Value::String(String::new())));
            lines.push(
                template
                    .render_with(&Value::Object(headers), &blank)
                    .context("executing the --format template")?,
            );
        }
        for (i, row) in self.rows.iter().enumerate() {
            let row_methods = |name: &str, args: &[Value]| methods(i, name, args);
            lines.push(
                template
                    .render_with(row, &row_methods)
                    .context("executing the --format template")?,
            );
        }
        if table {
            let cells: Vec<Vec<String>> = lines
                .iter()
                .map(|line| line.split('\t').map(str::to_string).collect())
                .collect();
            print_table(out, &cells)?;
        } else {
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
        Ok(())
    }
}

/// Fields → values as a row object, every value a string as Docker's listings have.
pub fn string_row<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect(),
    )
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

/// Sizes as `images` and `ps` print them (Docker's `HumanSizeWithPrecision(n, 3)`):
/// decimal units, three significant digits, `77.6MB`.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 3)
}

/// Sizes as `system df` prints them (Docker's `HumanSize`): four significant digits.
pub fn human_size_df(bytes: u64) -> String {
    human_size_with_precision(bytes, 4)
}

/// Go's `%.{precision}g` of the size in the largest decimal unit below it.
fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    format!("{}{}", crate::template::go_g(v, precision), units[u])
}

/// "8 seconds ago" from an RFC 3339 time, as Docker's CREATED columns say it.
pub fn since(rfc3339: &str) -> String {
    let Some(t) = parse_rfc3339(rfc3339) else {
        return rfc3339.to_string();
    };
    format!("{} ago", human_duration(now_secs() - t))
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

/// A duration in seconds as Docker's `units.HumanDuration` says it ("Up 5 minutes").
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    // Docker rounds hours to the nearest one.
    let hours = (secs + 1800) / 3600;
    match secs {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".to_string(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".to_string(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        s => format!("{} years", s / 3600 / 24 / 365),
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
        assert_eq!(human_size(77_612_345), "77.6MB");
        assert_eq!(human_size(1_234_567_890), "1.23GB");
        assert_eq!(human_size_df(1_234_567_890), "1.235GB");
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(8), "8 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(5400), "2 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
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
