//! What is measured on a fixture's database after the load, with no server running:
//! `audit verify` speed, the time `audit --serial N` takes to tell one certificate's
//! story, and the end-of-run check that the audit chain verifies and certificates and
//! `certificate.issued` events match one to one.

use std::time::Instant;

use anyhow::bail;
use serde::Serialize;

use countersign::audit;
use countersign::store::{Store, prefill};

use crate::fixture::Fixture;

/// `audit verify` speed.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct VerifySpeed {
    pub events: i64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// How long `audit --serial N` (the story of one certificate) takes on the database.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SerialLookup {
    pub lookups: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// End-of-run correctness.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    pub ok: bool,
    pub certificates: i64,
    pub issued_events: i64,
    pub distinct_serials: i64,
    pub audit_events: i64,
    pub message: String,
}

impl Fixture {
    /// Times `audit verify` over the whole database.
    pub(crate) fn verify_speed(&self) -> anyhow::Result<VerifySpeed> {
        let store = Store::open(&self.load()?.database_path())?;
        let start = Instant::now();
        let v = audit::verify_store(&store)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(VerifySpeed {
            events: v.events,
            seconds,
            events_per_second: v.events as f64 / seconds,
        })
    }

    /// Times the audit query behind `audit --serial N` for `n` certificates spread over
    /// the table; each must find its `certificate.issued` event.
    pub(crate) fn serial_lookups(&self, n: usize) -> anyhow::Result<SerialLookup> {
        let store = Store::open(&self.load()?.database_path())?;
        let serials = prefill::spread_serials(&store, n)?;
        let mut times = Vec::with_capacity(serials.len());
        for serial in serials {
            let filter = audit::Filter {
                serial: Some(serial),
                limit: 100,
                ..audit::Filter::default()
            };
            let start = Instant::now();
            let events = store.read(|c| audit::query(c, &filter))?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            if !events.iter().any(|e| e.action == "certificate.issued") {
                bail!("audit --serial {serial} found no certificate.issued event");
            }
        }
        times.sort_by(f64::total_cmp);
        Ok(SerialLookup {
            lookups: times.len(),
            p50_ms: times.get(times.len() / 2).copied().unwrap_or(0.0),
            max_ms: times.last().copied().unwrap_or(0.0),
        })
    }

    /// The audit chain verifies and every certificate has exactly one issued event.
    pub(crate) fn check(&self) -> anyhow::Result<Check> {
        let store = Store::open(&self.load()?.database_path())?;
        let chain = audit::verify_store(&store);
        let prefill::Census {
            certificates,
            issued_events,
            distinct_serials,
            orphans,
        } = prefill::census(&store)?;
        let (ok, message, audit_events) = match chain {
            Err(e) => (false, format!("audit chain: {e}"), 0),
            Ok(v)
                if certificates != issued_events
                    || issued_events != distinct_serials
                    || orphans != 0 =>
            {
                (
                    false,
                    format!(
                        "{certificates} certificates, {issued_events} issued events, \
                         {distinct_serials} serials, {orphans} without exactly one event"
                    ),
                    v.events,
                )
            }
            Ok(v) => (
                true,
                "audit chain verifies; certificates and issued events match one to one".into(),
                v.events,
            ),
        };
        Ok(Check {
            ok,
            certificates,
            issued_events,
            distinct_serials,
            audit_events,
            message,
        })
    }
}

impl Check {
    /// Both databases' checks as one: ok only if both are, counts summed.
    pub(crate) fn and(self, other: Check) -> Check {
        let message = match (self.ok, other.ok) {
            (true, true) => self.message,
            (false, _) => self.message,
            (true, false) => other.message,
        };
        Check {
            ok: self.ok && other.ok,
            certificates: self.certificates + other.certificates,
            issued_events: self.issued_events + other.issued_events,
            distinct_serials: self.distinct_serials + other.distinct_serials,
            audit_events: self.audit_events + other.audit_events,
            message,
        }
    }
}
