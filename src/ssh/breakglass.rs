//! `breakglass ROLE --reason TEXT [--ttl D]`: a role at once, without approval, for the
//! key the user logged in with — what still works when the identity provider is down,
//! since the front door knows people by their registered keys. The certificate goes to
//! stdout alone, as `request` prints it; what happened goes to stderr. And `review ID
//! --justified|--unjustified --comment TEXT`.

use super::commands::BreakglassArgs;
use super::context::{CommandError, Context, call, decide};
use super::run::{request_id, text};
use super::terminal::Terminal;
use crate::render;
use crate::service::Verdict;

/// Runs `breakglass`.
pub(super) async fn use_glass(
    ctx: &Context,
    term: &Terminal,
    args: BreakglassArgs,
) -> Result<(), CommandError> {
    let new = super::wait::new_request(ctx, &args.role, &args.reason, args.ttl.as_deref())?;
    let view = decide(ctx, move |s, me| s.break_glass(me, new)).await?;
    let mut lines = vec![format!(
        "BREAK-GLASS: {} taken without approval as request {}",
        view.role, view.id
    )];
    if let Some(bg) = &view.breakglass {
        if bg.ttl_cut {
            lines.push(format!(
                "the lifetime asked ({}) was cut to the role's break-glass max_ttl: {}",
                render::seconds(bg.ttl_asked_seconds.unwrap_or(0)),
                render::seconds(view.ttl_seconds)
            ));
        }
        lines.push(format!(
            "recorded in the audit log and sent to each [[notify]] sink the CA has (if it has \
             none, nobody was paged); {} review(s) by {} are due by {}",
            bg.reviews_required,
            bg.reviewers.join(", "),
            bg.review_due
        ));
    }
    if let Some(c) = &view.certificate {
        lines.push(format!(
            "certificate serial {} valid until {}",
            c.serial, c.valid_before
        ));
    }
    term.err(lines.join("\n") + "\n").await?;
    let id = request_id(&view.id)?;
    let cert = call(ctx, move |s, me| s.certificate(me, &id)).await?;
    Ok(term.out(format!("{}\n", cert.trim_end())).await?)
}

/// Runs `review`.
pub(super) async fn review(
    ctx: &Context,
    term: &Terminal,
    id: &str,
    unjustified: bool,
    comment: &[String],
) -> Result<(), CommandError> {
    let id = request_id(id)?;
    let comment =
        text(comment, "comment")?.ok_or_else(|| CommandError::invalid("comment is required"))?;
    let verdict = if unjustified {
        Verdict::Unjustified
    } else {
        Verdict::Justified
    };
    let view = decide(ctx, move |s, me| {
        s.review_breakglass(me, &id, verdict, comment)
    })
    .await?;
    let line = match view.breakglass.as_ref() {
        Some(b) => match &b.outcome {
            Some(outcome) => format!("review of {} closed: {outcome}\n", view.id),
            None => format!(
                "review of {}: {} of {} verdicts\n",
                view.id,
                b.verdicts.len(),
                b.reviews_required
            ),
        },
        None => format!("{} {}\n", view.id, view.status),
    };
    Ok(term.out(line).await?)
}
