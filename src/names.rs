//! Validated names and texts: the types every input is parsed into at the edge.
//!
//! Past this module nothing re-checks strings. User, group and role names are lower-case
//! ASCII so that no two names alias by case or look-alike letters; principals are limited
//! to the characters sshd compares literally; free texts (reasons, comments) carry no
//! control characters, so they are safe in logs, tables and sshd's key ID log line.

mod host;
mod idempotency;
mod ident;
mod number;
mod request_id;
mod serial;
mod text;

pub use host::{HostPattern, HostPrincipal, MAX_HOST_PRINCIPALS};
pub use idempotency::{IdempotencyKey, MAX_IDEMPOTENCY_KEY};
pub use ident::{GroupName, Principal, RoleName, UserName};
pub use number::{MAX_DURATION, parse_duration, short_duration};
pub use request_id::RequestId;
pub use serial::Serial;
pub(crate) use text::FORBIDDEN as TEXT_FORBIDDEN;
pub use text::Text;
pub(crate) use text::is_forbidden_char;

/// Why a piece of input was not accepted; the message names the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidName(pub String);

#[cfg(test)]
mod tests;
