//! The benchmark's report: a human table, or JSON for tracking.

use serde::Serialize;

use crate::baseline::Rate;
use crate::checks::{Check, SerialLookup, VerifySpeed};
use crate::fixture::Prefill;
use crate::load::FlowRun;
use crate::postgres::Waits;

/// Everything one `countersign-bench run` measured.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    /// CPUs this process may use.
    pub cores: usize,
    pub raw_ed25519: Option<Rate>,
    pub ssh_keygen: Option<Rate>,
    pub in_process: Option<Rate>,
    pub single: Option<FlowRun>,
    pub multi: Option<FlowRun>,
    /// The same C-client flows against a server that only answers HTTP (`echo.rs`).
    pub http_only: Option<FlowRun>,
    pub prefill: Option<Prefill>,
    /// The prefilled database, loaded in turns with `scale_small`.
    pub scaled: Option<FlowRun>,
    /// The small database (the earlier runs' certificates only), in the same turns.
    pub scale_small: Option<FlowRun>,
    pub verify: Option<VerifySpeed>,
    pub serial_lookup: Option<SerialLookup>,
    /// The servers' peak resident memory (VmHWM), file pages they mapped included.
    pub rss_mb: f64,
    /// The servers' own memory (RssAnon) at the end of their load, the largest.
    pub rss_anon_mb: f64,
    pub check: Option<Check>,
    /// `--backend postgres`: replicas on the one PostgreSQL database.
    pub pg_replicas: usize,
    /// The C-client flows on SQLite, in turns with `postgres`.
    pub pg_sqlite: Option<FlowRun>,
    /// The same flows on PostgreSQL, spread over the replicas.
    pub postgres: Option<FlowRun>,
    /// Where PostgreSQL's backends waited meanwhile.
    pub pg_waits: Option<Waits>,
    /// Events in the PostgreSQL audit chain, verified after the run.
    pub pg_audit_events: Option<i64>,
    /// Statements PostgreSQL ran per flow in the turns (`pg_stat_statements`, when
    /// loaded).
    pub pg_statements_per_flow: Option<f64>,
    /// CPU PostgreSQL's processes (backends, WAL writer, checkpointer...) used per
    /// PostgreSQL flow over the turns, in milliseconds.
    pub pg_cpu_ms_per_flow: Option<f64>,
}

fn flows_line(label: &str, r: &FlowRun) {
    println!(
        "{label:<34} {:>9.0} flows/s  create p50/p95/p99 {:.2}/{:.2}/{:.2} ms  \
         approve {:.2}/{:.2}/{:.2} ms  cert {:.2}/{:.2}/{:.2} ms",
        r.flows_per_second,
        r.create.p50_ms,
        r.create.p95_ms,
        r.create.p99_ms,
        r.approve.p50_ms,
        r.approve.p95_ms,
        r.approve.p99_ms,
        r.certificate.p50_ms,
        r.certificate.p95_ms,
        r.certificate.p99_ms
    );
    println!(
        "{:<34} {:>9.3} ms server CPU per flow, {:.3} ms load-generator CPU per flow; \
         writer thread on CPU {:.0}% of the run, running batches {:.0}%",
        "",
        r.server_cpu_ms_per_flow,
        r.client_cpu_ms_per_flow,
        r.writer_busy * 100.0,
        r.writer_running * 100.0
    );
    let [used, stale, unused] = r.reads_ahead;
    let sent = used + stale + unused;
    if sent > 0.0 {
        println!(
            "{:<34} reads sent ahead {:.1} a flow: used {:.0}%, stale {:.0}%, unused {:.0}%",
            "",
            sent / r.flows.max(1) as f64,
            used * 100.0 / sent,
            stale * 100.0 / sent,
            unused * 100.0 / sent
        );
    }
}

impl Report {
    /// Prints the human table.
    pub(crate) fn print(&self) {
        println!("countersign-bench ({} cores)", self.cores);
        if let Some(r) = &self.raw_ed25519 {
            println!(
                "{:<34} {:>9.0} sig/s",
                "raw Ed25519, 600 B, 1 thread", r.per_second
            );
        }
        match &self.ssh_keygen {
            Some(r) => println!(
                "{:<34} {:>9.0} certs/s",
                "ssh-keygen -s, process per cert", r.per_second
            ),
            None => println!("{:<34} {:>9}", "ssh-keygen -s", "not installed"),
        }
        if let (Some(r), Some(raw)) = (&self.in_process, &self.raw_ed25519) {
            println!(
                "{:<34} {:>9.0} certs/s  {:.2}x raw Ed25519",
                "countersign signing, 1 thread",
                r.per_second,
                r.per_second / raw.per_second
            );
        }
        if let Some(r) = &self.single {
            flows_line(&format!("flows, {} client, empty db", r.clients), r);
        }
        if let Some(r) = &self.multi {
            flows_line(&format!("flows, {} clients, empty db", r.clients), r);
            if let Some(k) = &self.ssh_keygen {
                println!(
                    "{:<34} {:>9.1}x ssh-keygen -s",
                    "",
                    r.flows_per_second / k.per_second
                );
            }
        }
        if let Some(h) = &self.http_only {
            flows_line(&format!("flows, {} clients, HTTP only", h.clients), h);
            if let Some(r) = &self.multi {
                println!(
                    "{:<34} {:>9.2}x: countersign's flows vs a server that only answers HTTP",
                    "",
                    r.flows_per_second / h.flows_per_second.max(f64::EPSILON)
                );
            }
        }
        if let (Some(l), Some(p)) = (&self.pg_sqlite, &self.postgres) {
            flows_line(&format!("  in turns: SQLite, {} clients", l.clients), l);
            flows_line(
                &format!(
                    "  in turns: PostgreSQL, {} replica{}",
                    self.pg_replicas,
                    if self.pg_replicas == 1 { "" } else { "s" }
                ),
                p,
            );
            println!(
                "{:<34} {:>9.2}x throughput, {:.2}x approve p99",
                "PostgreSQL vs SQLite, in turns",
                p.flows_per_second / l.flows_per_second.max(f64::EPSILON),
                p.approve.p99_ms / l.approve.p99_ms.max(f64::EPSILON)
            );
        }
        if let (Some(db), Some(l), Some(p)) =
            (self.pg_cpu_ms_per_flow, &self.pg_sqlite, &self.postgres)
        {
            // Every process's CPU a flow, and what the machine's cores allow at that.
            let all_lite = l.server_cpu_ms_per_flow + l.client_cpu_ms_per_flow;
            let all_pg = p.server_cpu_ms_per_flow + p.client_cpu_ms_per_flow + db;
            let ceiling = |ms: f64| self.cores as f64 * 1000.0 / ms.max(f64::EPSILON);
            println!(
                "{:<34} {db:>9.3} ms CPU per flow; all processes {all_pg:.3} ms a flow \
                 (SQLite {all_lite:.3}): {} cores allow at most {:.0} (SQLite {:.0}) flows/s",
                "PostgreSQL processes",
                self.cores,
                ceiling(all_pg),
                ceiling(all_lite)
            );
        }
        if let Some(w) = &self.pg_waits {
            let total: u64 = w.events.values().sum();
            let mut top: Vec<_> = w.events.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1));
            let shares: Vec<String> = top
                .iter()
                .take(5)
                .map(|(e, n)| format!("{e} {:.0}%", **n as f64 * 100.0 / total.max(1) as f64))
                .collect();
            println!(
                "{:<34} {:.1} active backends on average; {}",
                "PostgreSQL backends (sampled)",
                total as f64 / w.samples.max(1) as f64,
                shares.join(", ")
            );
        }
        if let Some(n) = self.pg_statements_per_flow {
            println!(
                "{:<34} {n:>9.1} per flow (pg_stat_statements)",
                "PostgreSQL statements"
            );
        }
        if let Some(n) = self.pg_audit_events {
            println!("{:<34} {n} events, chain verifies", "PostgreSQL audit");
        }
        if let Some(p) = &self.prefill {
            println!(
                "{:<34} {:>9.1} s",
                format!("prefill {} certificates", p.certificates),
                p.seconds
            );
        }
        if let (Some(s), Some(m)) = (&self.scaled, &self.scale_small) {
            flows_line(&format!("  in turns: small db, {} clients", m.clients), m);
            flows_line(
                &format!("  in turns: prefilled db, {} clients", s.clients),
                s,
            );
            println!(
                "{:<34} {:>9.2}x throughput, {:.2}x approve p99",
                "prefilled vs small, in turns",
                s.flows_per_second / m.flows_per_second.max(f64::EPSILON),
                s.approve.p99_ms / m.approve.p99_ms.max(f64::EPSILON)
            );
        }
        if let Some(v) = &self.verify {
            println!(
                "{:<34} {:>9.0} events/s ({} events in {:.2} s)",
                "audit verify", v.events_per_second, v.events, v.seconds
            );
        }
        if let Some(l) = &self.serial_lookup {
            println!(
                "{:<34} {:>9.2} ms p50, {:.2} ms max ({} certificates)",
                "audit --serial N (story of a cert)", l.p50_ms, l.max_ms, l.lookups
            );
        }
        println!(
            "{:<34} {:>9.1} MB (file pages mapped by the audit check at start included)",
            "server peak RSS", self.rss_mb
        );
        println!(
            "{:<34} {:>9.1} MB (heap, stacks and caches, after the load)",
            "server anonymous RSS", self.rss_anon_mb
        );
        if let Some(c) = &self.check {
            println!(
                "{:<34} {}: {}",
                "check",
                if c.ok { "ok" } else { "FAILED" },
                c.message
            );
        }
    }
}
