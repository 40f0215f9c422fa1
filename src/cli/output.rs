//! Human-readable output: aligned tables and request summaries.

use crate::service::RequestView;

/// Prints rows as left-aligned columns under a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
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
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// One line per request for `list`.
pub fn request_rows(requests: &[RequestView]) -> Vec<Vec<String>> {
    requests
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.role.clone(),
                r.requester.clone(),
                r.status.clone(),
                format!("{}/{}", r.approvals.len(), r.approvals_required),
                r.created_at.clone(),
                r.reason.clone(),
            ]
        })
        .collect()
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

/// The full story of one request for `show`.
pub fn request_details(r: &RequestView) {
    println!("request      {}", r.id);
    println!("role         {}", r.role);
    println!("requester    {}", r.requester);
    println!("reason       {}", r.reason);
    println!("status       {}", r.status);
    println!("principals   {}", r.principals.join(", "));
    println!(
        "ttl          {}",
        humantime::format_duration(std::time::Duration::from_secs(r.ttl_seconds.max(0) as u64))
    );
    println!("public key   {}", r.public_key_fingerprint);
    println!("created      {}", r.created_at);
    if r.status == "pending" {
        println!("expires      {}", r.expires_at);
    }
    for a in &r.approvals {
        match &a.comment {
            Some(c) => println!("approved by  {} at {}: {c}", a.approver, a.at),
            None => println!("approved by  {} at {}", a.approver, a.at),
        }
    }
    for w in &r.waiting_for {
        println!(
            "waiting for  {} more from {}",
            w.remaining,
            w.approvers.join(", ")
        );
    }
    if r.status != "pending" && r.status != "issued" {
        let by = r.decided_by.as_deref().unwrap_or("-");
        let note = r
            .decision_note
            .as_deref()
            .map(|n| format!(": {n}"))
            .unwrap_or_default();
        println!(
            "ended        {} by {by}{note}",
            r.decision_code.as_deref().unwrap_or(&r.status)
        );
    }
    if let Some(c) = &r.certificate {
        println!("serial       {}", c.serial);
        println!("key id       {}", c.key_id);
        println!("valid        {} to {}", c.valid_after, c.valid_before);
    }
}

/// Prints JSON, pretty.
pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
