//! Durations people type.

use std::time::Duration;

use super::InvalidName;

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
