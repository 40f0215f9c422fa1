//! `countersign breakglass ROLE --reason TEXT [--key K.pub] [--ttl D]`, `countersign
//! breakglass allow USER` (admins) and `countersign review ID --justified|--unjustified
//! --comment TEXT`.
//!
//! Breaking the glass issues at once: the certificate is written next to the key as
//! `request --wait` writes it, and the request id is printed for the review.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::json;

use super::client::Client;
use super::output;
use super::request::{default_key, read_public_key, write_certificate};
use super::show::urlencode;
use crate::render;
use crate::service::{Allowance, RequestView};

/// `breakglass` arguments: a role to break into, or `allow USER`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BreakglassArgs {
    #[command(subcommand)]
    pub command: Option<BreakglassCommand>,
    /// The role to take at once (it must have a [roles.NAME.break_glass] table listing you).
    #[arg(required = true)]
    pub role: Option<String>,
    /// Why (required; every notification sink, the reviewers and the audit log see it).
    #[arg(long, required = true)]
    pub reason: Option<String>,
    /// Certificate lifetime, e.g. 45m (default: the role's default_ttl; cut to the
    /// table's max_ttl, never refused).
    #[arg(long)]
    pub ttl: Option<String>,
    /// Public key to certify (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub,
    /// id_rsa.pub, id_ed25519_sk.pub or id_ecdsa_sk.pub).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `breakglass` subcommands.
#[derive(Debug, Subcommand)]
pub enum BreakglassCommand {
    /// Allow USER one more use while their last one waits for its review (admins; never
    /// yourself).
    Allow {
        /// The user.
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `review` arguments.
#[derive(Debug, Args)]
#[command(group = verdict_group())]
pub struct ReviewArgs {
    /// The break-glass use's request id (r-...).
    pub id: String,
    /// The use was justified.
    #[arg(long)]
    pub justified: bool,
    /// It was not: its certificate is revoked at once if still valid.
    #[arg(long)]
    pub unjustified: bool,
    /// Why (required; recorded with the verdict).
    #[arg(long)]
    pub comment: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--justified` or `--unjustified`, exactly one.
fn verdict_group() -> clap::ArgGroup {
    clap::ArgGroup::new("verdict")
        .required(true)
        .args(["justified", "unjustified"])
}

/// Runs `breakglass`.
pub(super) fn run(url: &str, args: BreakglassArgs) -> anyhow::Result<ExitCode> {
    if let Some(BreakglassCommand::Allow { user, json }) = args.command {
        let allowed: Allowance = super::login::post_stepping_up(
            url,
            "/v1/breakglass/allow",
            &json!({ "user": user }),
            "Allowing a break-glass use",
        )?;
        if json {
            output::json(&allowed)?;
        } else {
            let waiting = match (&allowed.unreviewed, &allowed.unjustified) {
                (Some(id), _) => format!("; their use {id} still waits for its review"),
                (None, Some(id)) => format!("; their last use {id} was judged unjustified"),
                (None, None) => String::new(),
            };
            outln!("{} may break the glass once more{waiting}", allowed.user)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(role), Some(reason)) = (args.role, args.reason) else {
        return Err(anyhow!("name the role and give --reason"));
    };
    let key_path = match &args.key {
        Some(p) => p.clone(),
        None => default_key("pass --key PATH.pub")?,
    };
    let public_key = read_public_key(&key_path)?;
    let body = json!({ "role": role, "public_key": public_key, "reason": reason, "ttl": args.ttl });
    // Issuing without approval: with a session, a recent sign-in.
    let r: RequestView =
        super::login::post_stepping_up(url, "/v1/breakglass", &body, "Breaking the glass")?;
    let client = Client::from_env(url)?;
    eprintln!(
        "BREAK-GLASS: {} taken without approval as request {}",
        r.role, r.id
    );
    if let Some(bg) = r.breakglass.as_ref().filter(|b| b.ttl_cut) {
        eprintln!(
            "the lifetime asked ({}) was cut to the role's break-glass max_ttl: {}",
            render::seconds(bg.ttl_asked_seconds.unwrap_or(0)),
            render::seconds(r.ttl_seconds)
        );
    }
    write_certificate(&client, &r, &key_path)?;
    if let Some(bg) = &r.breakglass {
        eprintln!(
            "recorded in the audit log and sent to each [[notify]] sink the CA has (if it has \
             none, nobody was paged); {} review(s) by {} are due by {}",
            bg.reviews_required,
            bg.reviewers.join(", "),
            bg.review_due
        );
    }
    if args.json {
        output::json(&r)?;
    } else {
        outln!("{}", r.id)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `review`.
pub(super) fn review(url: &str, args: ReviewArgs) -> anyhow::Result<ExitCode> {
    let verdict = if args.unjustified {
        "unjustified"
    } else {
        "justified"
    };
    let body = json!({ "verdict": verdict, "comment": args.comment });
    let path = format!("/v1/requests/{}/review", urlencode(&args.id));
    // A decision, like approving: with a session, a recent sign-in.
    let r: RequestView = super::login::post_stepping_up(url, &path, &body, "Reviewing")?;
    if args.json {
        output::json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    let bg = r
        .breakglass
        .as_ref()
        .ok_or_else(|| anyhow!("request {} is not a break-glass use", r.id))?;
    match &bg.outcome {
        Some(outcome) => outln!("review of {} closed: {outcome}", r.id)?,
        None => outln!(
            "review of {}: {} of {} verdicts",
            r.id,
            bg.verdicts.len(),
            bg.reviews_required
        )?,
    }
    if let Some(revoked) = r.certificate.as_ref().and_then(|c| c.revoked.as_ref()) {
        outln!(
            "its certificate is revoked ({} by {})",
            revoked.at,
            revoked.by
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
