//! The SSH front door: request and approve access with nothing but `ssh`.
//!
//! countersign also listens for SSH (russh). The key a user logs in with is their
//! identity (it must be in their `ssh_keys`), the login name is `ca` or their own name,
//! and the command line is a countersign command: `request`, `status`, `list`, `approve`,
//! `deny`, `cancel`, `cert`, `whoami`, `help`. Every command calls the same [`Service`]
//! operation as the HTTP API, so every rule and every refusal code is the same.
//! `request` certifies the very key the user authenticated with.
//!
//! Layout:
//! - `listener.rs`: [`serve`], the accept loop, connection limits (in all and per
//!   address), authentication, idle and total timeouts, shutdown. The host key is
//!   handed in ([`crate::host_key`] loads it).
//! - `handler.rs`: the russh handler of one connection: public-key auth only, session
//!   channels, one command per channel on its own task.
//! - `auth.rs`: key + login name -> [`Identity`], or why not.
//! - `limits.rs`: refused authentications and open connections per address, open
//!   channels per connection, running commands per user.
//! - `commands.rs`: the command line: bounded, shell-split (never run by a shell), clap.
//! - `context.rs`: what a command runs with, how it fails, how it calls the [`Service`].
//! - `run.rs`: one command through the [`Service`]; errors as `countersign: CODE: message`.
//! - `wait.rs`: `request` waiting for the decision, progress on stderr, certificate on
//!   stdout.
//! - `terminal.rs`: a channel as stdout, stderr and exit status.
//!
//! [`Service`]: crate::service::Service

mod auth;
mod breakglass;
mod commands;
mod context;
mod handler;
mod limits;
mod listener;
mod run;
mod terminal;
mod wait;

pub use auth::{Identity, LOGIN_NAME};
pub use commands::MAX_COMMAND_BYTES;
pub use listener::serve;
