//! Docker's unit syntax: memory sizes (`64m`, `1.5g`, `512k`, `100` bytes) and
//! fractional CPU counts (`--cpus 0.5`).

use anyhow::{bail, Context, Result};

/// Parses a size with Docker's binary suffixes (b, k, m, g, t, p; optional `b`/`ib`).
pub fn parse_bytes(input: &str) -> Result<i64> {
    let s = input.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().with_context(|| {
        format!("invalid size {input:?}: expected a number with an optional unit (b, k, m, g)")
    })?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b').filter(|u| !u.is_empty()))
        .unwrap_or(&unit);
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        other => bail!("invalid size {input:?}: unknown unit {other:?} (use b, k, m, g, t or p)"),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        bail!("invalid size {input:?}: too large");
    }
    Ok(bytes as i64)
}

/// Parses a memory-swap value: `-1` means unlimited, anything else is a size.
pub fn parse_swap(input: &str) -> Result<i64> {
    if input.trim() == "-1" {
        Ok(-1)
    } else {
        parse_bytes(input)
    }
}

/// CFS period Docker uses for `--cpus`.
pub const CPU_PERIOD: u64 = 100_000;

/// Converts `--cpus` to a CFS quota for [`CPU_PERIOD`].
pub fn cpus_to_quota(input: &str) -> Result<i64> {
    let cpus: f64 = input
        .trim()
        .parse()
        .with_context(|| format!("invalid --cpus {input:?}: expected a number such as 0.5"))?;
    if cpus.is_nan() || cpus <= 0.0 || !cpus.is_finite() {
        bail!("invalid --cpus {input:?}: must be greater than 0");
    }
    let max = crate::units::online_cpus() as f64;
    if cpus > max {
        bail!("invalid --cpus {input:?}: only {max} CPUs are available");
    }
    Ok((cpus * CPU_PERIOD as f64).round() as i64)
}

/// Number of CPUs the host has online.
pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_multiples() {
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("100b").unwrap(), 100);
        assert_eq!(parse_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for bad in ["", "m", "12x", "-5m", "1..2m", "99999999999p"] {
            assert!(parse_bytes(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn swap_accepts_minus_one() {
        assert_eq!(parse_swap("-1").unwrap(), -1);
        assert_eq!(parse_swap("128m").unwrap(), 128 << 20);
    }

    #[test]
    fn cpus_become_quota() {
        assert_eq!(cpus_to_quota("0.5").unwrap(), 50_000);
        assert_eq!(cpus_to_quota("1").unwrap(), 100_000);
        assert!(cpus_to_quota("0").is_err());
        assert!(cpus_to_quota("abc").is_err());
        assert!(cpus_to_quota("100000").is_err());
    }
}
