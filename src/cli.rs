//! The command line: clap definitions and dispatch, one file per command group.
//!
//! Client commands (`whoami`, `request`, `list`, `show`, `approve`, `deny`, `cancel`,
//! `cert`, `revoke`, `user`, `done`, `krl`, `audit`, `report`, `host`, `known-hosts`)
//! talk to the HTTP API with `COUNTERSIGN_URL` and `COUNTERSIGN_TOKEN` (the token is read
//! from the environment only, never from argv, where `ps` shows it; a host's join token
//! and renewal need none). `ssh-config` prints a client snippet offline. Operator
//! commands (`init`, `serve`, `check-config`, `reload`, `token`, `backup`,
//! `migrate-store`, `audit verify`, `audit checkpoint`) run on the CA host against the
//! config and its data directory.
//! `completions` and `man` print what a package installs, from these same definitions.

/// `print!` to stdout that returns the write's error instead of panicking: a full disk
/// (`> /dev/full`) or a reader that went away (`| head`) becomes an error, not a crash.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::stdout_error)
    }};
}

/// `println!` as [`out!`] does `print!`.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*).map_err($crate::cli::stdout_error)
    }};
}

/// A write to stdout that failed.
#[derive(Debug, thiserror::Error)]
#[error("writing to standard output: {0}")]
pub struct StdoutError(std::io::Error);

/// A failed write to stdout, saying so (its kind kept: a closed pipe stays `BrokenPipe`).
pub fn stdout_error(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), StdoutError(e))
}

/// Whether `e` is a write to stdout whose reader went away (`countersign ... | head`):
/// then the command stops quietly, as if by SIGPIPE, instead of reporting an error. A
/// broken pipe anywhere else (a connection, a file) is an error like any other.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == std::io::ErrorKind::BrokenPipe
                && io.get_ref().is_some_and(|inner| inner.is::<StdoutError>())
        })
    })
}

mod audit;
mod backup;
mod breakglass;
mod checkpoint;
mod client;
mod completions;
mod decide;
mod export;
mod files;
mod host;
mod identity;
mod init;
mod keys;
mod krl;
mod login;
mod man;
mod migrate;
mod notify;
mod output;
mod policy;
mod reload;
mod report;
mod request;
mod revoke;
mod serve;
mod session;
mod show;
mod tail;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// How client commands find the server and authenticate, for `--help`.
const CLIENT_ENVIRONMENT: &str = "\
Client commands talk to the server at COUNTERSIGN_URL (or --url; default
http://127.0.0.1:7070; write the scheme: https://ca.example.com:7070) with the token in
COUNTERSIGN_TOKEN (from the environment only, never an argument; an operator creates
one with `countersign token create USER`), or else the session `countersign login`
saved. COUNTERSIGN_CA_CERT=FILE.pem trusts only the
CA certificates in that file for https:// URLs. Operator commands read COUNTERSIGN_CONFIG
(or --config).";

/// What `countersign --version` prints after the name: the crate's version and the git
/// commit it was built from (`unknown` outside a git checkout; see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("COUNTERSIGN_GIT_COMMIT"),
    ")"
);

/// Command-line interface of countersign.
#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    version = VERSION,
    about = "SSH certificate authority with just-in-time access and separation of duties",
    after_help = CLIENT_ENVIRONMENT
)]
pub struct Cli {
    /// Configuration file (operator commands).
    #[arg(
        long,
        global = true,
        env = "COUNTERSIGN_CONFIG",
        default_value = "config/countersign.toml"
    )]
    pub config: PathBuf,
    /// Base URL of the countersign server (client commands) [default: the server of the
    /// session `login` saved, else http://127.0.0.1:7070].
    #[arg(long, global = true, env = "COUNTERSIGN_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory, database and CA key; print the CA public key.
    Init(init::InitArgs),
    /// Run the HTTP API (and the SSH front door when [ssh] is set).
    Serve(serve::ServeArgs),
    /// Validate the configuration and print a summary.
    CheckConfig,
    /// Check the configuration and have the running server reload it (SIGHUP).
    Reload,
    /// Sign the configuration file, and see or check its signatures ([policy]).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Create or revoke API tokens (on the CA host).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// List or remove bindings of user names to people of the identity provider (on
    /// the CA host).
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Sign in with the company's identity provider (saves a session for the other
    /// client commands).
    Login(login::LoginArgs),
    /// Forget the session saved by `login`.
    Logout,
    /// Register SSH keys as yours (proving you hold them), list or remove them.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// List or revoke sessions from `login` (admins).
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Show who the token belongs to.
    Whoami(JsonFlag),
    /// Ask for a role.
    Request(request::RequestArgs),
    /// List requests you can see.
    List(show::ListArgs),
    /// Show one request.
    Show(show::ShowArgs),
    /// Approve a request.
    Approve(decide::ApproveArgs),
    /// Deny a request.
    Deny(decide::DenyArgs),
    /// Break the glass: take a role at once, without approval, in an emergency (it is
    /// announced to every notification sink and reviewed afterwards); `allow USER` lets a
    /// user do it once more before their last use is reviewed (admins).
    Breakglass(breakglass::BreakglassArgs),
    /// Review a break-glass use: --justified or --unjustified (which revokes it at once).
    Review(breakglass::ReviewArgs),
    /// Cancel your own pending request.
    Cancel(decide::CancelArgs),
    /// Fetch the certificate of an issued request.
    Cert(show::CertArgs),
    /// Revoke certificates by serial, request or user (admins); `--user` also disables
    /// the user.
    Revoke(revoke::RevokeArgs),
    /// Enable a user disabled by `revoke --user` (admins).
    #[command(subcommand)]
    User(user::UserCommand),
    /// End your own certificate early ("I'm finished").
    Done(revoke::DoneArgs),
    /// Fetch the Key Revocation List, check its signature, replace a file atomically.
    Krl(krl::KrlArgs),
    /// SSH host certificates: join tokens, enrollment and renewal on a server, revocation
    /// and listing (admins).
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Print the `@cert-authority` line that makes ssh trust the host CA.
    KnownHosts(host::KnownHostsArgs),
    /// Print an ssh_config block that trusts only host certificates (no prompt, ever).
    SshConfig(host::SshConfigArgs),
    /// Read the audit log (admins); `verify` and `checkpoint` run on the CA host.
    Audit(audit::AuditArgs),
    /// Write a consistent, verified copy of the database (on the CA host, also while it serves).
    Backup(backup::BackupArgs),
    /// Copy the SQLite database into the empty PostgreSQL database the config names
    /// (on the CA host, with the server stopped).
    MigrateStore(migrate::MigrateStoreArgs),
    /// Notifications not delivered: status, retry a dead one (on the CA host).
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Access review: per role, who held it, when, how long, why, approved by whom (admins).
    Report(report::ReportArgs),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(completions::CompletionsArgs),
    /// Write the manual pages (countersign.1, countersign-serve.1, ...) into a folder.
    Man(man::ManArgs),
}

/// `--json` for commands whose output scripts read.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let url = cli.url.clone().unwrap_or_else(login::default_url);
    match cli.command {
        Command::Init(args) => init::init(&cli.config, &args),
        Command::Serve(args) => serve::serve(&cli.config, &args),
        Command::CheckConfig => init::check_config(&cli.config),
        Command::Reload => reload::run(&cli.config),
        Command::Policy(cmd) => policy::run(&cli.config, cmd),
        Command::Token(cmd) => token::run(&cli.config, cmd),
        Command::Identity(cmd) => identity::run(&cli.config, cmd),
        Command::Audit(args) => audit::run(&cli.config, &url, args),
        Command::Login(args) => login::login(&url, &args),
        Command::Logout => login::logout(),
        Command::Session(cmd) => session::run(&url, cmd),
        Command::Keys(cmd) => keys::run(&url, cmd),
        Command::Whoami(flag) => show::whoami(&url, flag.json),
        Command::Request(args) => request::run(&url, args),
        Command::List(args) => show::list(&url, args),
        Command::Show(args) => show::show(&url, args),
        Command::Approve(args) => decide::approve(&url, args),
        Command::Deny(args) => decide::deny(&url, args),
        Command::Cancel(args) => decide::cancel(&url, args),
        Command::Breakglass(args) => breakglass::run(&url, args),
        Command::Review(args) => breakglass::review(&url, args),
        Command::Cert(args) => show::cert(&url, args),
        Command::Revoke(args) => revoke::revoke(&url, args),
        Command::User(cmd) => user::run(&url, cmd),
        Command::Done(args) => revoke::done(&url, args),
        Command::Krl(args) => krl::run(&url, args),
        Command::Host(cmd) => host::run(&url, cmd),
        Command::KnownHosts(args) => host::known_hosts(&url, &args),
        Command::SshConfig(args) => host::ssh_config(&url, &args),
        Command::Report(args) => report::run(&url, args),
        Command::Backup(args) => backup::run(&cli.config, &args),
        Command::MigrateStore(args) => migrate::run(&cli.config, &args),
        Command::Notify(cmd) => notify::run(&cli.config, cmd),
        Command::Completions(args) => completions::run(&args),
        Command::Man(args) => man::run(&args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_broken_pipe_on_stdout_stops_quietly() {
        let pipe = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(is_broken_pipe(&anyhow::Error::new(stdout_error(pipe()))));
        let wrapped = anyhow::Error::new(stdout_error(pipe())).context("printing the list");
        assert!(is_broken_pipe(&wrapped));
        // A connection or a file that broke is an error to report.
        assert!(!is_broken_pipe(&anyhow::Error::new(pipe())));
        assert!(!is_broken_pipe(
            &anyhow::Error::new(pipe()).context("sending the request")
        ));
    }
}
