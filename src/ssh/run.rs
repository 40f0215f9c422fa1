//! Runs one command line for an authenticated user through the [`Service`] operations
//! the HTTP API uses, and turns the outcome into output and an exit status.
//!
//! Input is parsed into the same types as the API's (`names.rs`); errors carry the same
//! stable codes and messages as the API's answers and print as one line,
//! `countersign: CODE: message`, with exit status 1. A bad command line exits 2.
//!
//! [`Service`]: crate::service::Service

use super::commands::{self, Command, ListArgs, Parsed};
use super::context::{CommandError, Context, call, change, decide};
use super::terminal::{Disconnected, Terminal};
use super::wait;
use crate::error_code::ErrorCode;
use crate::names::{RequestId, Text};
use crate::render;
use crate::service::LIST_LIMIT;
use crate::service::Status;

/// Exit status of a command that did what was asked.
pub(super) const EXIT_OK: u32 = 0;
/// Exit status of a refusal, a failure, or a request that ended without a certificate.
pub(super) const EXIT_FAILED: u32 = 1;
/// Exit status of a bad command line.
pub(super) const EXIT_USAGE: u32 = 2;

/// Runs the exec request `line`; returns the exit status (the client may be gone).
pub(super) async fn run(ctx: &Context, term: &Terminal, line: &[u8]) -> u32 {
    let status = match commands::parse(line) {
        Parsed::Help(text) => term.out(text).await.map(|()| EXIT_OK),
        Parsed::Usage(text) => term.err(text).await.map(|()| EXIT_USAGE),
        Parsed::Run(command) => execute(ctx, term, command).await,
    };
    status.unwrap_or(EXIT_FAILED)
}

/// A shell request: the help, then exit 0.
pub(super) async fn shell(term: &Terminal) -> u32 {
    match term.out(commands::help()).await {
        Ok(()) => EXIT_OK,
        Err(Disconnected) => EXIT_FAILED,
    }
}

/// The answer when the user already runs as many commands as allowed.
pub(super) async fn too_many_sessions(term: &Terminal, max: usize) -> u32 {
    let line = format!(
        "countersign: {}: you already run {max} command(s) over ssh, the most allowed at once; \
         wait for one to end\n",
        ErrorCode::TooManySessions
    );
    let _ = term.err(line).await;
    EXIT_FAILED
}

async fn execute(ctx: &Context, term: &Terminal, command: Command) -> Result<u32, Disconnected> {
    tracing::info!(user = %ctx.identity.user, command = name(&command), "ssh command");
    match dispatch(ctx, term, command).await {
        Ok(()) => Ok(EXIT_OK),
        Err(CommandError::Failed { code, message }) => {
            term.err(format!("countersign: {code}: {message}\n"))
                .await?;
            Ok(EXIT_FAILED)
        }
        Err(CommandError::Disconnected(d)) => Err(d),
    }
}

/// Whether the key this connection logged in with is still registered to its user (in
/// the config in force, or in the database: `countersign keys remove` takes it back).
async fn still_registered(ctx: &Context) -> Result<(), CommandError> {
    let key = ctx.identity.key.clone();
    let owner = call(ctx, move |s, _| s.key_owner(&key)).await?;
    match owner {
        Some(u) if u == ctx.identity.user => Ok(()),
        _ => Err(CommandError::Failed {
            code: ErrorCode::Unauthenticated,
            message: format!(
                "the key this connection logged in with is no longer registered to {} \
                 (the configuration changed, or the key was removed)",
                ctx.identity.user
            ),
        }),
    }
}

async fn dispatch(ctx: &Context, term: &Terminal, command: Command) -> Result<(), CommandError> {
    // The user may have been disabled, or their key taken out of the config (a reload),
    // since this connection logged in: each command checks again (and each state change
    // once more, in its own transaction).
    still_registered(ctx).await?;
    call(ctx, |s, me| s.check_enabled(me)).await?;
    match command {
        Command::Request(args) => wait::request(ctx, term, args).await,
        Command::Status(a) => status(ctx, term, &a.id).await,
        Command::List(args) => list(ctx, term, args).await,
        Command::Approve { id, comment } => approve(ctx, term, &id, &comment).await,
        Command::Deny { id, reason } => deny(ctx, term, &id, &reason).await,
        Command::Cancel(a) => cancel(ctx, term, &a.id).await,
        Command::Cert(a) => cert(ctx, term, &a.id).await,
        Command::Whoami => whoami(ctx, term).await,
        Command::Breakglass(args) => super::breakglass::use_glass(ctx, term, args).await,
        Command::Review {
            id,
            unjustified,
            comment,
            ..
        } => super::breakglass::review(ctx, term, &id, unjustified, &comment).await,
    }
}

fn name(command: &Command) -> &'static str {
    match command {
        Command::Request(_) => "request",
        Command::Status(_) => "status",
        Command::List(_) => "list",
        Command::Approve { .. } => "approve",
        Command::Deny { .. } => "deny",
        Command::Cancel(_) => "cancel",
        Command::Cert(_) => "cert",
        Command::Whoami => "whoami",
        Command::Breakglass(_) => "breakglass",
        Command::Review { .. } => "review",
    }
}

/// A request id as the API parses it.
pub(super) fn request_id(raw: &str) -> Result<RequestId, CommandError> {
    RequestId::parse(raw).map_err(|e| CommandError::invalid(e.to_string()))
}

/// Free-text words as one validated text; `None` when there are none.
pub(super) fn text(words: &[String], what: &str) -> Result<Option<Text>, CommandError> {
    match commands::joined(words) {
        Some(t) => Ok(Some(
            Text::parse(&t, what).map_err(|e| CommandError::invalid(e.to_string()))?,
        )),
        None => Ok(None),
    }
}

async fn status(ctx: &Context, term: &Terminal, id: &str) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let view = call(ctx, move |s, me| s.get(me, &id)).await?;
    Ok(term.out(render::render_request_details(&view)).await?)
}

async fn list(ctx: &Context, term: &Terminal, args: ListArgs) -> Result<(), CommandError> {
    let status = Status::filter(args.status.as_deref()).map_err(CommandError::invalid)?;
    let after = match args.after.as_deref() {
        None | Some("") => None,
        Some(id) => Some(request_id(id)?),
    };
    let limit = args.limit.unwrap_or(LIST_LIMIT);
    let page = call(ctx, move |s, me| s.list(me, status, after.as_ref(), limit)).await?;
    let rows = render::request_rows(&page.requests);
    term.out(render::render_table(&render::REQUEST_HEADER, &rows))
        .await?;
    if let Some(next) = page.next {
        // The same command for the next page, on stderr so that stdout stays the table.
        let mut again = String::from("list");
        if let Some(s) = status {
            again.push_str(&format!(" --status {}", s.as_str()));
        }
        if let Some(n) = args.limit {
            again.push_str(&format!(" --limit {n}"));
        }
        term.err(format!("more requests follow: {again} --after {next}\n"))
            .await?;
    }
    Ok(())
}

async fn approve(
    ctx: &Context,
    term: &Terminal,
    id: &str,
    comment: &[String],
) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let comment = text(comment, "comment")?;
    let view = decide(ctx, move |s, me| s.approve(me, &id, comment)).await?;
    tracing::info!(id = %view.id, status = %view.status, "request approved");
    Ok(term
        .out(format!("{}\n", render::decision_summary(&view)))
        .await?)
}

async fn deny(
    ctx: &Context,
    term: &Terminal,
    id: &str,
    reason: &[String],
) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let reason =
        text(reason, "reason")?.ok_or_else(|| CommandError::invalid("reason is required"))?;
    let view = change(ctx, move |s, me| s.deny(me, &id, reason)).await?;
    tracing::info!(id = %view.id, "request denied");
    Ok(term
        .out(format!("{}\n", render::decision_summary(&view)))
        .await?)
}

async fn cancel(ctx: &Context, term: &Terminal, id: &str) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let view = change(ctx, move |s, me| s.cancel(me, &id)).await?;
    tracing::info!(id = %view.id, "request cancelled");
    Ok(term
        .out(format!("{}\n", render::decision_summary(&view)))
        .await?)
}

async fn cert(ctx: &Context, term: &Terminal, id: &str) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let cert = call(ctx, move |s, me| s.certificate(me, &id)).await?;
    Ok(term.out(format!("{}\n", cert.trim_end())).await?)
}

async fn whoami(ctx: &Context, term: &Terminal) -> Result<(), CommandError> {
    let me = call(ctx, |s, me| s.whoami(me)).await?;
    let key = ctx.identity.key.fingerprint();
    Ok(term
        .out(format!(
            "{}key          {key}\n",
            render::render_whoami(&me)
        ))
        .await?)
}
