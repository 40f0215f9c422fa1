//! Where and how log lines go: stderr, as text for people or (`[server] log_format =
//! "json"`) one JSON object per line for a log shipper.
//!
//! A JSON line holds `timestamp`, `level`, `target`, `message` and the event's fields
//! (`id` of a request, `user`, `role`, `serial`, ...) at the top level, and the HTTP
//! request it belongs to under `span` (`client` address, `method`, `route` template).
//! Nothing logged carries a secret: tokens, keys and passphrases are never fields.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process's logger: `RUST_LOG` if set, else `default` (`info` for the
/// server, `warn` for other commands), in `format`. Once per process; later calls do
/// nothing.
pub fn init(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Already installed (a test process, or a second call): keep the first.
    let _ = match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).try_init()
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// A line said at most once every [`Throttle::EVERY`] (a condition every request or probe
/// meets while it lasts: a database down, a replica left behind), counting the ones left
/// out meanwhile.
#[derive(Debug)]
pub struct Throttle(std::sync::Mutex<(Option<std::time::Instant>, u64)>);

impl Throttle {
    /// How often a throttled line is said at most.
    pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// A throttle that lets the first line through.
    pub const fn new() -> Throttle {
        Throttle(std::sync::Mutex::new((None, 0)))
    }

    /// `Some(left_out)` when the line is to be said now (how many were left out since the
    /// last), `None` when it is left out.
    pub fn allow(&self) -> Option<u64> {
        let mut last = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        if last.0.is_some_and(|t| now.duration_since(t) < Self::EVERY) {
            last.1 += 1;
            return None;
        }
        last.0 = Some(now);
        Some(std::mem::take(&mut last.1))
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::Throttle;

    #[test]
    fn a_throttled_line_is_said_once_and_counts_the_rest() {
        let t = Throttle::new();
        assert_eq!(t.allow(), Some(0));
        assert_eq!(t.allow(), None);
        assert_eq!(t.allow(), None);
        // Ten seconds on, it would say 2 left out; the count is kept until then.
        assert_eq!(t.0.lock().unwrap().1, 2);
    }
}
