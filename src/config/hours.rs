//! `[server] timezone` and `working_hours`: when a request counts as made outside
//! working hours, a flag on the web UI's review page.

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};

use super::{Builder, ConfigError};

/// Working hours: Monday to Friday, from `start` to `end` (minutes after midnight) in
/// `timezone`; an `end` before `start` is a shift over midnight (`22:00-06:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingHours {
    /// The IANA time zone (`Europe/Berlin`); UTC by default.
    pub timezone: chrono_tz::Tz,
    /// Minutes after local midnight when the working day starts.
    pub start: u32,
    /// Minutes after local midnight when it ends (before `start`: the next day).
    pub end: u32,
}

impl Default for WorkingHours {
    fn default() -> Self {
        WorkingHours {
            timezone: chrono_tz::UTC,
            start: 8 * 60,
            end: 18 * 60,
        }
    }
}

impl WorkingHours {
    /// Whether `at` falls outside working hours: a Saturday or Sunday, or before `start`
    /// or from `end` on, in the time zone.
    pub fn outside(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone);
        let minute = local.hour() * 60 + local.minute();
        // The day the shift began: the day before, in the early part of a night shift.
        let (inside, day) = if self.start < self.end {
            (self.start <= minute && minute < self.end, local.weekday())
        } else if minute < self.end {
            (true, local.weekday().pred())
        } else {
            (minute >= self.start, local.weekday())
        };
        !inside || matches!(day, Weekday::Sat | Weekday::Sun)
    }

    /// The hours in words: `08:00-18:00 UTC, Monday to Friday`.
    pub fn describe(&self) -> String {
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        format!(
            "{}-{} {}, Monday to Friday",
            hm(self.start),
            hm(self.end),
            self.timezone.name()
        )
    }

    /// `at` in the time zone, for people (`Sat 2026-12-05 08:40 Europe/Berlin`); `None`
    /// in UTC, where the RFC 3339 time says it already.
    pub fn local(&self, at: DateTime<Utc>) -> Option<String> {
        (self.timezone != chrono_tz::UTC).then(|| {
            format!(
                "{} {}",
                at.with_timezone(&self.timezone).format("%a %Y-%m-%d %H:%M"),
                self.timezone.name()
            )
        })
    }
}

/// `HH:MM` (or `H:MM`) as minutes after midnight, `24:00` the latest.
fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(h, 1..=2) || !digits(m, 2..=2) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

impl Builder<'_> {
    pub(super) fn working_hours(
        &self,
        timezone: Option<&str>,
        hours: Option<&str>,
    ) -> Result<WorkingHours, ConfigError> {
        let d = WorkingHours::default();
        let timezone = match timezone {
            Some(name) => name.parse::<chrono_tz::Tz>().map_err(|_| {
                self.err(
                    "server.timezone",
                    format!("{name:?} is not an IANA time zone (such as \"Europe/Berlin\")"),
                )
            })?,
            None => d.timezone,
        };
        let (start, end) = match hours {
            Some(text) => {
                let bad = || {
                    self.err(
                        "server.working_hours",
                        format!("{text:?} is not HH:MM-HH:MM (two different times)"),
                    )
                };
                let (a, b) = text.split_once('-').ok_or_else(bad)?;
                let (a, b) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
                if a == b {
                    return Err(bad());
                }
                (a, b)
            }
            None => (d.start, d.end),
        };
        Ok(WorkingHours {
            timezone,
            start,
            end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn outside_working_hours_in_the_time_zone() {
        let berlin = WorkingHours {
            timezone: chrono_tz::Europe::Berlin,
            ..WorkingHours::default()
        };
        // Friday 2026-12-04: 07:30 UTC is 08:30 in Berlin (inside), 17:30 UTC is 18:30.
        assert!(!berlin.outside(at("2026-12-04T07:30:00Z")));
        assert!(berlin.outside(at("2026-12-04T17:30:00Z")));
        assert!(berlin.outside(at("2026-12-04T06:59:00Z")));
        // Saturday.
        assert!(berlin.outside(at("2026-12-05T10:00:00Z")));
        let utc = WorkingHours::default();
        assert!(!utc.outside(at("2026-12-04T08:00:00Z")));
        assert!(utc.outside(at("2026-12-04T18:00:00Z")));
        assert_eq!(utc.describe(), "08:00-18:00 UTC, Monday to Friday");
        // A night shift: 22:00 to 06:00.
        let night = WorkingHours {
            start: 22 * 60,
            end: 6 * 60,
            ..WorkingHours::default()
        };
        assert!(!night.outside(at("2026-12-03T23:30:00Z")));
        assert!(!night.outside(at("2026-12-04T05:59:00Z")));
        assert!(night.outside(at("2026-12-04T12:00:00Z")));
        // Monday 03:00 ends a Sunday night: outside; Saturday 03:00 ends Friday's shift.
        assert!(night.outside(at("2026-12-07T03:00:00Z")));
        assert!(!night.outside(at("2026-12-05T03:00:00Z")));
        assert_eq!(
            berlin.local(at("2026-12-04T07:30:00Z")).as_deref(),
            Some("Fri 2026-12-04 08:30 Europe/Berlin")
        );
        assert_eq!(
            WorkingHours::default().local(at("2026-12-04T07:30:00Z")),
            None
        );
    }

    #[test]
    fn hours_parse() {
        assert_eq!(minutes("08:00"), Some(480));
        assert_eq!(minutes("24:00"), Some(1440));
        for bad in ["8", "08:0", "25:00", "24:01", "08:60", "x:00", "008:00"] {
            assert_eq!(minutes(bad), None, "{bad}");
        }
    }
}
