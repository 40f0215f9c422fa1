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
