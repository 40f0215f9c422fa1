//! `countersign audit tail [--follow] [--after-seq N]`: the audit log as JSON lines on
//! stdout, for a log shipper (Vector, Fluent Bit) to carry to a SIEM; with `--follow`,
//! new events as they are committed, until stopped.
//!
//! Every event is checked before it is printed: its hash is recomputed and it must
//! follow the one before it (the event `--after-seq` names is fetched first, as the
//! anchor, and must carry `--after-hash` when given: the last line printed before). A
//! gap, a changed event or a log that went back ends the command with an error rather
//! than pass on a broken chain. An unreachable server is waited out.
//!
//! The chain is not keyed: it proves the log printed is one unbroken log, not that it is
//! the CA's. Over plain HTTP a machine in the middle could append events of its own: use
//! `https://` (or a loopback address).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use super::client::{Client, Transient};
use crate::audit::{Event, Fields, GENESIS};

/// `audit tail` arguments.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Start after this sequence number (the last one a previous run printed); 0 prints
    /// the whole log.
    #[arg(long, default_value_t = 0)]
    pub after_seq: i64,
    /// Keep printing new events as they are committed, until interrupted.
    #[arg(long)]
    pub follow: bool,
    /// The `hash` of event --after-seq, as the previous run printed it: the log must
    /// still hold that very event (not one rewritten since), or nothing is printed.
    #[arg(long, requires = "after_seq")]
    pub after_hash: Option<String>,
    /// With --follow: how often to ask for new events (at least 100ms).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

#[derive(Deserialize)]
struct Events {
    events: Vec<Event>,
}

/// Events asked for at once.
const PAGE: usize = 1000;

/// The longest wait between two tries while the server does not answer.
const MOST_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `audit tail`.
pub(super) fn tail(url: &str, args: &TailArgs) -> anyhow::Result<ExitCode> {
    if args.after_seq < 0 {
        bail!("--after-seq must not be negative");
    }
    if args.interval < Duration::from_millis(100) {
        bail!("--interval must be at least 100ms");
    }
    if args.after_seq > 0 && args.after_hash.is_none() {
        eprintln!(
            "warning: --after-seq without --after-hash: the log is checked from event {} on, \
             not against what was printed before it",
            args.after_seq
        );
    }
    let client = Client::from_env(url)?;
    let mut outage: Option<Instant> = None;
    let mut backoff = args.interval;
    let mut chain = loop {
        match Chain::anchored(&client, args.after_seq, args.after_hash.as_deref()) {
            Ok(chain) => break chain,
            Err(e) if args.follow && passing(&e) => {
                if say_again(&mut outage) {
                    eprintln!(
                        "{e:#}; still trying, to follow from event {}",
                        args.after_seq
                    );
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MOST_BACKOFF);
            }
            Err(e) => return Err(e),
        }
    };
    loop {
        let page = client.get::<Events>(&format!("/v1/audit?after_seq={}&limit={PAGE}", chain.seq));
        let events = match page {
            Ok(page) => page.events,
            Err(e) if args.follow && passing(&e) => {
                if say_again(&mut outage) {
                    eprintln!("{e:#}; still following, from event {}", chain.seq);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MOST_BACKOFF);
                continue;
            }
            Err(e) => return Err(e),
        };
        if outage.take().is_some() {
            eprintln!(
                "the server answers again; following from event {}",
                chain.seq
            );
            backoff = args.interval;
        }
        let full = events.len() == PAGE;
        for event in &events {
            chain.accept(event)?;
            outln!("{}", serde_json::to_string(event)?)?;
        }
        if full {
            continue;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(args.interval);
    }
}

/// Whether to say (again) that the server does not answer: at the first failure, then
/// once a minute, so that a stream stuck on something that does not pass (a TLS
/// mistake, a certificate) is seen in the shipper's log. `said` is when it was last said
/// in this outage (`None`: no outage yet).
fn say_again(said: &mut Option<Instant>) -> bool {
    if said.is_some_and(|at| at.elapsed() < SAY_AGAIN) {
        return false;
    }
    *said = Some(Instant::now());
    true
}

/// How often a failure that goes on is said again.
const SAY_AGAIN: Duration = Duration::from_secs(60);

/// Whether `e` may pass by waiting: no answer came (the server restarting, down, or a
/// connection cut mid-answer), or a balancer said its backend is gone (502/503/504). A
/// refusal (401, 403, ...) or a broken chain does not.
fn passing(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Transient>().is_some() || e.chain().any(|c| c.is::<reqwest::Error>())
}

/// Where the printed log stands: the last event's sequence number and hash.
struct Chain {
    seq: i64,
    hash: String,
}

impl Chain {
    /// The chain after event `after_seq` (fetched, so that the next one can be checked
    /// against it), or from the start.
    fn anchored(
        client: &Client,
        after_seq: i64,
        after_hash: Option<&str>,
    ) -> anyhow::Result<Chain> {
        if after_seq == 0 {
            return Ok(Chain {
                seq: 0,
                hash: GENESIS.to_owned(),
            });
        }
        let page: Events = client
            .get(&format!("/v1/audit?after_seq={}&limit=1", after_seq - 1))
            .context("reading the event to resume after")?;
        let Some(anchor) = page
            .events
            .into_iter()
            .next()
            .filter(|e| e.seq == after_seq)
        else {
            bail!(
                "the audit log has no event {after_seq}: it is shorter than when that event \
                 was read (a database restored from an older copy?); not resuming"
            );
        };
        check_hash(&anchor)?;
        if let Some(expected) = after_hash
            && expected != anchor.hash
        {
            bail!(
                "event {after_seq} is not the one printed before (its hash is {}, not \
                 {expected}): the log was rewritten or restored since; not resuming",
                anchor.hash
            );
        }
        Ok(Chain {
            seq: anchor.seq,
            hash: anchor.hash,
        })
    }

    /// `event`, if it is the next one of the chain and its hash holds.
    fn accept(&mut self, event: &Event) -> anyhow::Result<()> {
        if event.seq != self.seq + 1 {
            bail!(
                "the audit log skipped from event {} to {}: not passing on a broken chain",
                self.seq,
                event.seq
            );
        }
        if event.prev_hash != self.hash {
            bail!(
                "event {} does not follow event {} (its prev_hash differs): the log changed \
                 since; run `countersign audit verify` on the CA host",
                event.seq,
                self.seq
            );
        }
        check_hash(event)?;
        self.seq = event.seq;
        self.hash = event.hash.clone();
        Ok(())
    }
}

/// The event's `hash`, recomputed from its fields, must be the one it carries.
fn check_hash(event: &Event) -> anyhow::Result<()> {
    let detail = event.detail.to_string();
    let fields = Fields {
        seq: event.seq,
        at: &event.at,
        actor: &event.actor,
        action: &event.action,
        request_id: event.request_id.as_deref(),
        serial: event.serial.as_deref(),
        detail: &detail,
    };
    if fields.hash(&event.prev_hash) != event.hash {
        bail!(
            "event {} does not match its hash: not passing it on; run `countersign audit \
             verify` on the CA host",
            event.seq
        );
    }
    Ok(())
}
