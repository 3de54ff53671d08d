//! Parsing the command line's sizes (`64KiB`) and durations (`30s`), with errors that say
//! what is expected.

use std::time::Duration;

/// Parses a size in bytes: a whole number with an optional unit, `B`, `KiB` (or `K`, `KB`),
/// `MiB` (`M`, `MB`) or `GiB` (`G`, `GB`), all powers of 1024.
///
/// ```
/// use taskthread_examples::relay::units::parse_size;
///
/// assert_eq!(parse_size("65536"), Ok(65536));
/// assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
/// assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<usize, String> {
    let (number, unit) = split_number(s)?;
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "unknown size unit `{unit}` in `{s}`: use B, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// Parses a duration: a whole number with a unit, `ms`, `s`, `m` or `h` (a bare number is
/// seconds).
///
/// ```
/// use std::time::Duration;
/// use taskthread_examples::relay::units::parse_duration;
///
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(s)?;
    let millis: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => {
            return Err(format!(
                "unknown duration unit `{unit}` in `{s}`: use ms, s, m or h"
            ));
        }
    };
    number
        .checked_mul(millis)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too long"))
}

fn split_number(s: &str) -> Result<(u64, &str), String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(format!("`{s}` does not start with a number"));
    }
    let number = s[..digits]
        .parse()
        .map_err(|_| format!("`{s}` is too large"))?;
    Ok((number, s[digits..].trim()))
}
