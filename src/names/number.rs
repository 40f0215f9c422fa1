//! Numbers people type: certificate serials and durations.

use std::time::Duration;

use super::InvalidName;

/// A certificate serial as people type it: a positive decimal number below 2^64 (serials
/// are never 0).
pub fn parse_serial(s: &str) -> Result<u64, InvalidName> {
    use std::num::IntErrorKind;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidName(
            "serial must be a positive decimal number (digits only)".into(),
        ));
    }
    match s.parse::<u64>() {
        Ok(0) => Err(InvalidName("serial 0 is never issued".into())),
        Ok(n) => Ok(n),
        Err(e) if *e.kind() == IntErrorKind::PosOverflow => Err(InvalidName(
            "serial is too large: serials are below 2^64 (18446744073709551616)".into(),
        )),
        Err(_) => Err(InvalidName(
            "serial must be a positive decimal number (digits only)".into(),
        )),
    }
}

/// Longest duration anything in countersign accepts (a year); keeps time arithmetic far
/// from overflow whatever a config or request says.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a positive human duration such as `45m`, `2h`, `1h30m`, whole seconds only.
pub fn parse_duration(s: &str, what: &str) -> Result<Duration, InvalidName> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| InvalidName(format!("invalid {what} {s:?}: {e}")))?;
    if d.subsec_nanos() != 0 {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: use whole seconds"
        )));
    }
    if d.is_zero() {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: must be positive"
        )));
    }
    if d > MAX_DURATION {
        return Err(InvalidName(format!(
            "invalid {what} {s:?}: at most 366 days"
        )));
    }
    Ok(d)
}
