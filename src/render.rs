//! Human-readable text: aligned tables, request details and summaries, `whoami`.
//!
//! Shared by the CLI, which prints it to stdout (`cli/output.rs`), and the SSH front door,
//! which writes it to a channel: both show a request the same way. Pure functions of the
//! service's views; no I/O.

use crate::service::{RequestView, Status, WhoAmI};

/// Rows as left-aligned columns under a header, one line each.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// One line per request for `list`.
pub fn request_rows(requests: &[RequestView]) -> Vec<Vec<String>> {
    requests
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.role.clone(),
                requester(r),
                match r.certificate.as_ref().and_then(|c| c.revoked.as_ref()) {
                    Some(_) => format!("{} (revoked)", r.status),
                    None => r.status.to_string(),
                },
                match r.role_changed && r.status == Status::Pending {
                    true => format!(
                        "{}/{} (role changed)",
                        r.approvals.len(),
                        r.approvals_required
                    ),
                    false => format!("{}/{}", r.approvals.len(), r.approvals_required),
                },
                r.created_at.clone(),
                r.reason.clone(),
            ]
        })
        .collect()
}

/// The requester's name, marked when they are disabled (offboarded).
fn requester(r: &RequestView) -> String {
    if r.requester_disabled {
        format!("{} (disabled)", r.requester)
    } else {
        r.requester.clone()
    }
}

/// Header matching [`request_rows`].
pub const REQUEST_HEADER: [&str; 7] = [
    "ID",
    "ROLE",
    "REQUESTER",
    "STATUS",
    "APPROVALS",
    "CREATED",
    "REASON",
];

/// What `show` prints, one fact per line.
pub fn render_request_details(r: &RequestView) -> String {
    let mut lines = vec![
        format!("request      {}", r.id),
        format!("role         {}", r.role),
        format!("requester    {}", requester(r)),
        format!("reason       {}", r.reason),
        format!("status       {}", r.status),
        format!("principals   {}", r.principals.join(", ")),
        format!(
            "ttl          {}",
            humantime::format_duration(std::time::Duration::from_secs(r.ttl_seconds.max(0) as u64))
        ),
        format!("public key   {}", r.public_key_fingerprint),
        format!("created      {}", r.created_at),
    ];
    if r.status == Status::Pending {
        lines.push(format!("expires      {}", r.expires_at));
    }
    if r.role_changed {
        lines.push(match r.status == Status::Pending {
            true => {
                "role changed since it was asked: approving ends it (policy_changed); ask again"
                    .to_owned()
            }
            false => "role changed since it was asked".to_owned(),
        });
    }
    for a in &r.approvals {
        lines.push(match &a.comment {
            Some(c) => format!("approved by  {} at {}: {c}", a.approver, a.at),
            None => format!("approved by  {} at {}", a.approver, a.at),
        });
    }
    for w in &r.waiting_for {
        lines.push(format!(
            "waiting for  {} more from {}",
            w.remaining,
            w.approvers.join(", ")
        ));
    }
    if r.status != Status::Pending && !r.status.has_certificate() {
        let by = r.decided_by.as_deref().unwrap_or("-");
        let note = r
            .decision_note
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        lines.push(format!(
            "ended        {} by {by}{note}",
            r.decision_code.as_deref().unwrap_or(r.status.as_str())
        ));
    }
    if let Some(c) = &r.certificate {
        lines.push(format!("serial       {}", c.serial));
        lines.push(format!("key id       {}", c.key_id));
        lines.push(format!(
            "valid        {} to {}",
            c.valid_after, c.valid_before
        ));
        if let Some(v) = &c.revoked {
            lines.push(format!("revoked      {} by {}: {}", v.at, v.by, v.reason));
        }
    }
    if let Some(b) = &r.breakglass {
        lines.extend(breakglass_lines(b));
    }
    lines.join("\n") + "\n"
}

/// What `show` adds for a break-glass use: its terms and its review.
fn breakglass_lines(b: &crate::service::BreakGlassView) -> Vec<String> {
    let mut lines = vec![format!(
        "break-glass  taken without approval; {} review(s) by {} due {}{}",
        b.reviews_required,
        b.reviewers.join(", "),
        b.review_due,
        if b.overdue { " (OVERDUE)" } else { "" }
    )];
    if b.ttl_cut {
        lines.push(format!(
            "ttl asked    {} (cut to the break-glass max_ttl)",
            seconds(b.ttl_asked_seconds.unwrap_or(0))
        ));
    }
    for v in &b.verdicts {
        lines.push(format!(
            "reviewed by  {} at {}: {}: {}",
            v.reviewer, v.at, v.verdict, v.comment
        ));
    }
    if let Some(o) = &b.outcome {
        let at = b.closed_at.as_deref().unwrap_or("-");
        lines.push(format!("review       closed {at}: {o}"));
    }
    if let Some(a) = &b.allowed_by {
        lines.push(format!(
            "allowed by   {a} (one more use before the last was reviewed)"
        ));
    }
    lines
}

/// A configured duration as the config would write it, in its largest whole unit:
/// `24h` is `1d`, `31d` stays `31d` (not humantime's `1month 13h 30m 36s`), `90m` stays
/// `90m`.
pub fn config_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `seconds` as a duration people read (`1h 30m`).
pub fn seconds(seconds: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(seconds.max(0) as u64)).to_string()
}

/// One line after `approve`, `deny` or `cancel`: where the request stands now.
pub fn decision_summary(r: &RequestView) -> String {
    match &r.certificate {
        Some(c) => format!(
            "{} {}: certificate serial {} valid until {}",
            r.id, r.status, c.serial, c.valid_before
        ),
        None if r.status == Status::Pending => format!(
            "{} pending: {} more approval(s) needed",
            r.id, r.approvals_needed
        ),
        None => format!("{} {}", r.id, r.status),
    }
}

/// What a pending request waits for: "1 approval from group:dba and 2 approvals from
/// group:sre or user:carol", or "a decision" when no step is open.
pub fn waiting_for(r: &RequestView) -> String {
    let steps: Vec<String> = r
        .waiting_for
        .iter()
        .map(|w| {
            let s = if w.remaining == 1 { "" } else { "s" };
            format!(
                "{} approval{s} from {}",
                w.remaining,
                w.approvers.join(" or ")
            )
        })
        .collect();
    if steps.is_empty() {
        "a decision".into()
    } else {
        steps.join(" and ")
    }
}

/// What `whoami` prints.
pub fn render_whoami(me: &WhoAmI) -> String {
    let admin = if me.admin { " (admin)" } else { "" };
    let disabled = if me.disabled { " (disabled)" } else { "" };
    let mut bot = match &me.scopes {
        Some(s) => format!(
            "token        a service account's (scopes {})\n",
            s.join(", ")
        ),
        None => String::new(),
    };
    if me.session.is_some() {
        bot += "session      from the device flow: never approves, breaks the glass, reviews \
                or registers keys; requests only for registered keys (sign in with \
                `login --loopback` for those)\n";
    }
    let mut breakglass = String::new();
    if !me.can_break_glass.is_empty() {
        breakglass += &format!("break glass  {}\n", me.can_break_glass.join(", "));
    }
    if !me.can_review.is_empty() {
        breakglass += &format!("reviews      {}\n", me.can_review.join(", "));
    }
    format!(
        "user         {}{admin}{disabled}\ngroups       {}\nmay request  {}\n\
         may approve  {}\n{breakglass}{bot}",
        me.user,
        me.groups.join(", "),
        me.can_request.join(", "),
        me.can_approve.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::config_duration;

    #[test]
    fn a_configured_duration_reads_as_the_config_writes_it() {
        let d = |s: u64| config_duration(Duration::from_secs(s));
        assert_eq!(d(86_400), "1d");
        assert_eq!(d(31 * 86_400), "31d");
        assert_eq!(d(8 * 3_600), "8h");
        assert_eq!(d(90 * 60), "90m");
        assert_eq!(d(61), "61s");
        assert_eq!(d(0), "0s");
        // Each reads back as the same duration.
        for s in [86_400, 31 * 86_400, 8 * 3_600, 90 * 60, 61] {
            assert_eq!(humantime::parse_duration(&d(s)).unwrap().as_secs(), s);
        }
    }
}
