//! `countersign krl sync --out FILE [--interval 30s | --once]`: keeps sshd's
//! `RevokedKeys` file current on a server.
//!
//! Each round is `krl --out`'s, never forced: the KRL's signature must verify with the
//! pinned or named CA key, it must be recent and name our CA, and what it drops of the
//! file before the certificates end is kept in the file (the round then fails).
//! A round that fails leaves the file as it was (the last good KRL) and is logged; the
//! next round tries again. Rounds ask with `If-None-Match`, so an unchanged KRL is not
//! sent again. sshd reads `RevokedKeys` at each connection: nothing needs reloading.
//! With `--host` it keeps a client's `RevokedHostKeys` file current the same way (ssh
//! reads it at each connection too).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::{Checks, carry, check_age, fetch_verified, install, said, trusted_ca};
use crate::cli::client::Client;

/// `krl sync` arguments.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// File to keep current, replaced atomically (the file sshd's `RevokedKeys` names).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub checks: Checks,
    /// How often to fetch (at least 1s). sshd reads the file at each connection, so a
    /// revocation reaches this server within about this long.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Fetch once and exit: non-zero, with the reason, if the file could not be made
    /// current (for a systemd timer or cron).
    #[arg(long)]
    pub once: bool,
}

/// Runs `krl sync`: once, or every `--interval` until stopped.
pub(super) fn run(url: &str, args: &SyncArgs) -> anyhow::Result<ExitCode> {
    if args.interval < Duration::from_secs(1) {
        bail!("--interval must be at least 1s");
    }
    let client = Client::anonymous(url)?;
    let mut state = State::default();
    if args.once {
        round(&client, args, &mut state)?;
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "keeping {} current from {} every {}",
        args.out.display(),
        client.base(),
        humantime::format_duration(args.interval)
    );
    loop {
        if let Err(e) = round(&client, args, &mut state) {
            // The conditional fetch starts afresh: what failed may have been the file.
            state.etag = None;
            eprintln!(
                "countersign: krl sync: {e:#}; {} keeps its last good KRL, trying again in {}",
                args.out.display(),
                humantime::format_duration(args.interval)
            );
        }
        std::thread::sleep(args.interval);
    }
}

/// What the rounds remember.
#[derive(Default)]
struct State {
    /// The `ETag` of the KRL last written, while the file still holds it.
    etag: Option<String>,
    /// The bytes last written (to tell whether the file still holds them).
    written: Option<Vec<u8>>,
    /// The version last reported, so that a new line is logged only when it changes.
    reported: Option<u64>,
    /// The revocations last reported as kept (the CA dropped them early).
    kept: Vec<carry::Kept>,
}

/// One fetch: the file made current, or why not.
fn round(client: &Client, args: &SyncArgs, state: &mut State) -> anyhow::Result<()> {
    // Someone else changed or removed the file: fetch it whole, not "unchanged".
    if state.written.is_some() && std::fs::read(&args.out).ok() != state.written {
        state.etag = None;
    }
    let (ca, pin) = trusted_ca(client, &args.out, &args.checks)?;
    let fetched = match fetch_verified(
        client,
        (&args.checks, &args.out),
        &ca,
        state.etag.as_deref(),
    )? {
        Some(fetched) => fetched,
        None => {
            // "Not modified" is signed by nobody: the file must still be the KRL last
            // written, and that KRL young enough, or it is fetched whole (a machine in
            // the middle that answers 304 for ever must not freeze the file).
            let still_fresh = state
                .written
                .as_deref()
                .and_then(|bytes| crate::krl::read(bytes).ok())
                .is_some_and(|summary| check_age(&summary, &args.checks).is_ok());
            if still_fresh {
                return Ok(());
            }
            state.etag = None;
            fetch_verified(client, (&args.checks, &args.out), &ca, None)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "the server answered 304 Not Modified to an unconditional request; {} \
                     was left as it is",
                    args.out.display()
                )
            })?
        }
    };
    let installed = install(&args.out, &args.checks, &ca, pin, &fetched, false)?;
    let version = fetched.summary.version;
    if args.once || state.reported != Some(version) || state.kept != installed.kept {
        eprintln!("{}", said(&args.out, &ca, &fetched, &installed));
    }
    state.reported = Some(version);
    state.etag = fetched.etag.clone();
    state.written = Some(installed.bytes);
    if !installed.kept.is_empty() {
        let complaint = carry::complaint(&args.out, version, &installed.kept, args.checks.host);
        // Once: the run fails (a timer's unit shows failed). Running: said when it
        // changes, while the file keeps them and takes the CA's new revocations.
        if args.once {
            bail!(complaint);
        }
        if state.kept != installed.kept {
            eprintln!("countersign: krl sync: {complaint}");
        }
    }
    state.kept = installed.kept;
    Ok(())
}
