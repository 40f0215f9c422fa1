//! Durations people type.

use std::time::Duration;

use super::InvalidName;

/// Longest duration anything in countersign accepts (a year); keeps time arithmetic far
/// from overflow whatever a config or request says.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a positive human duration such as `45m`, `2h`, `1h30m`, whole seconds only.
pub fn parse_duration(s: &str, what: &str) -> Result<Duration, InvalidName> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| match e {
        // humantime's own hint ("30sec or 30ms") points the wrong way for lifetimes.
        humantime::DurationError::UnknownUnit { unit, value, .. } if unit.is_empty() => {
            InvalidName(format!(
                "invalid {what} {s:?}: a unit is needed, e.g. {value}m, {value}h or {value}d"
            ))
        }
        e => InvalidName(format!("invalid {what} {s:?}: {e}")),
    })?;
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

/// `d` as a person writes it: in the largest of days, hours, minutes and seconds that
/// divides it (`90d`, `36h`, `45m`, `90s`), unlike `humantime`'s calendar months.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_owned(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_written_in_the_largest_whole_unit() {
        for (secs, text) in [
            (90 * 86_400, "90d"),
            (36 * 3600, "36h"),
            (2700, "45m"),
            (90, "90s"),
        ] {
            assert_eq!(short_duration(Duration::from_secs(secs)), text);
        }
    }
}
