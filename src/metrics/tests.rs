//! A fresh page describes every family; known roles start at 0.

use super::*;

#[test]
fn a_fresh_page_describes_every_family() {
    let text = Metrics::new().encode(None, crate::store::Stats::default());
    for described in [
        "# TYPE countersign_sod_refusals_total counter",
        "# TYPE countersign_ssh_refusals_total counter",
        "# TYPE countersign_audit_append_duration_seconds histogram",
        "countersign_notifications{state=\"dead\"} 0",
    ] {
        assert!(text.contains(described), "{described} missing from\n{text}");
    }
}

#[test]
fn known_roles_start_at_zero_for_every_outcome() {
    let m = Metrics::new();
    m.know_roles(["prod-db"]);
    let text = m.encode(None, crate::store::Stats::default());
    for outcome in OUTCOMES {
        let line = format!(
            "countersign_requests_decided_total{{role=\"prod-db\",outcome=\"{}\"}} 0",
            outcome.as_str()
        );
        assert!(text.contains(&line), "{line} missing");
    }
    assert!(text.contains("countersign_requests_created_total{role=\"prod-db\"} 0"));
}

#[test]
fn wal_checkpoints_are_counted_by_outcome() {
    let m = Metrics::new();
    // The page after the store counted `counts`: each `(outcome, n)` shown as `n`.
    let shows = |counts, expected: &[(&str, u64)]| {
        let stats = crate::store::Stats {
            wal_checkpoints: counts,
            ..Default::default()
        };
        let text = m.encode(None, stats);
        for (outcome, n) in expected {
            let line =
                format!("countersign_store_wal_checkpoints_total{{outcome=\"{outcome}\"}} {n}");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        text
    };
    // Every outcome from the start, at 0 until counted (an alert on `failed` needs a
    // series); PostgreSQL's families are not shown on SQLite.
    let text = shows(
        [7, 3, 1, 0, 0],
        &[
            ("copied", 7),
            ("restarted", 3),
            ("gave_up", 1),
            ("failed", 0),
        ],
    );
    assert!(
        !text.contains("countersign_store_token_lookups_total{"),
        "{text}"
    );
    shows(
        [9, 4, 1, 2, 1],
        &[("copied", 9), ("on_writer", 2), ("failed", 1)],
    );
    // On PostgreSQL (a pool), its own families from the start, and no checkpoints.
    let text = Metrics::new().encode(
        None,
        crate::store::Stats {
            pool: Some((1, 1, 8)),
            ..Default::default()
        },
    );
    for line in [
        "countersign_store_token_lookups_total{outcome=\"read\"} 0",
        "countersign_store_reads_ahead_total{outcome=\"stale\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    assert!(
        !text.contains("countersign_store_wal_checkpoints_total{"),
        "{text}"
    );
    let fresh = Metrics::new().encode(None, crate::store::Stats::default());
    assert!(fresh.contains("countersign_sod_refusals_total{code=\"self_review\"} 0"));
}
