//! The PostgreSQL comparison (`run --backend postgres`, started by `scripts/bench.sh
//! --backend postgres`, which runs a throw-away cluster): N `countersign serve` replicas
//! sharing one PostgreSQL database, each with its own data dir (a copy of the one CA
//! key, its own mark and port), loaded in turns with the SQLite server at the same
//! client count. While they run, `pg_stat_activity` is sampled to show where the
//! backends wait (the write lock, the WAL flush, the client).

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use countersign::audit;
use countersign::service::{Access, Service};

use crate::fixture::{Fixture, free_port, policy};
use crate::server::Server;

/// Where the PostgreSQL database is.
#[derive(Debug, Clone)]
pub(crate) struct PgTarget {
    /// `postgres://USER@127.0.0.1:PORT/DB`, without a password.
    pub url: String,
    /// The role's password, one line, mode 0600.
    pub password_file: PathBuf,
}

impl PgTarget {
    fn storage_toml(&self) -> String {
        format!(
            "[storage]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"\n",
            self.url,
            self.password_file.display()
        )
    }
}

/// The replicas' data dirs; the first made the CA key and the tokens.
pub(crate) struct Replicas {
    pub fixtures: Vec<Fixture>,
}

impl Replicas {
    /// Creates `n` replica dirs under `dir` on `pg`'s database.
    pub(crate) fn create(
        dir: &Path,
        n: usize,
        pg: &PgTarget,
        server_prefix: Option<String>,
    ) -> anyhow::Result<Replicas> {
        let storage = pg.storage_toml();
        let first_dir = dir.join("replica-0");
        std::fs::create_dir_all(&first_dir).context("replica dir")?;
        let first = Fixture::create_with(&first_dir, server_prefix.clone(), &storage)?;
        let key = first.dir.join("data/ca_key");
        let mut fixtures = Vec::with_capacity(n);
        for k in 1..n.max(1) {
            let d = dir.join(format!("replica-{k}"));
            let data = d.join("data");
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&data)
                .context("replica data dir")?;
            let copy = data.join("ca_key");
            std::fs::copy(&key, &copy).context("copying the CA key")?;
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
            let (port, metrics_port) = (free_port()?, free_port()?);
            let config = d.join("bench.toml");
            std::fs::write(
                &config,
                format!("{}\n{storage}", policy(port, metrics_port)),
            )?;
            fixtures.push(Fixture {
                dir: d,
                config,
                port,
                metrics_port,
                tokens: first.tokens.clone(),
                server_prefix: server_prefix.clone(),
            });
        }
        fixtures.insert(0, first);
        Ok(Replicas { fixtures })
    }

    /// Starts every replica.
    pub(crate) fn start(&self) -> anyhow::Result<Vec<Server>> {
        self.fixtures.iter().map(Fixture::start_server).collect()
    }

    /// The audit chain of the shared database verifies (and every issuance follows its
    /// request and approvals); the number of events.
    pub(crate) fn verify(&self) -> anyhow::Result<i64> {
        let config = self.fixtures[0].load()?;
        let service = Service::open(config, Access::Existing, "bench")?;
        Ok(audit::verify_store(service.store())?.events)
    }
}

/// Where active PostgreSQL backends were seen waiting, over the samples taken.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Waits {
    /// Samples taken (about every 100 ms).
    pub samples: u64,
    /// `wait_event_type:wait_event` (or `CPU` for none) → backends seen in that state,
    /// summed over the samples.
    pub events: BTreeMap<String, u64>,
}

/// The role's password (first line of the password file).
fn password(pg: &PgTarget) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(&pg.password_file)?
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Statements the database has run for this role so far, from `pg_stat_statements`
/// (`scripts/bench.sh` loads it), leaving out the wait sampler's and this query's own;
/// `None` when the view is not there.
pub(crate) fn statements_run(pg: &PgTarget) -> anyhow::Result<Option<u64>> {
    let out = Command::new("psql")
        .arg(&pg.url)
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT sum(calls) FROM pg_stat_statements \
             WHERE userid = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND dbid = \
             (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND query NOT LIKE '%pg_stat_activity%' AND query NOT LIKE '%pg_stat_statements%'",
        ])
        .env("PGPASSWORD", password(pg)?)
        .output()
        .context("running psql")?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().ok())
}

/// PostgreSQL's processes on this machine: the postmaster and its children (every
/// backend, the WAL writer, the checkpointer...), found from the parent of a backend
/// that lives through the run (a `psql`'s is gone once it has answered).
pub(crate) struct DbProcesses {
    postmaster: u32,
}

/// CPU seconds used so far by each of [`DbProcesses`]' processes, by pid.
pub(crate) type DbCpu = BTreeMap<u32, f64>;

impl DbProcesses {
    /// Finds the postmaster of the backend `backend` (one that lives through the run:
    /// the sampler's).
    pub(crate) fn of_backend(backend: u32) -> anyhow::Result<DbProcesses> {
        let postmaster = proc_stat(backend)
            .map(|(parent, _)| parent)
            .context("the database is not on this machine: no /proc entry for its backend")?;
        Ok(DbProcesses { postmaster })
    }

    /// The CPU each process has used so far.
    pub(crate) fn cpu(&self) -> DbCpu {
        let mut out = DbCpu::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return out;
        };
        for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
            if let Some((parent, cpu)) = proc_stat(pid)
                && (pid == self.postmaster || parent == self.postmaster)
            {
                out.insert(pid, cpu);
            }
        }
        out
    }
}

/// The CPU seconds used between two [`DbProcesses::cpu`] readings: a process that
/// started in between counts whole; one that ended in between loses what it used after
/// the first reading (backends of the pool live through the run).
pub(crate) fn cpu_between(before: &DbCpu, after: &DbCpu) -> f64 {
    after
        .iter()
        .map(|(pid, now)| now - before.get(pid).copied().unwrap_or(0.0))
        .filter(|d| *d > 0.0)
        .sum()
}

/// A process's parent and CPU seconds (user + system, 100 ticks a second).
fn proc_stat(pid: u32) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let parent = fields.get(1)?.parse().ok()?;
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    Some((parent, (ticks(11)? + ticks(12)?) / 100.0))
}

/// Samples `pg_stat_activity` on one connection of its own until stopped.
pub(crate) struct WaitSampler {
    /// The sampler's backend's pid (its connection lives until [`WaitSampler::finish`]).
    pub(crate) backend: u32,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Waits>>,
}

const WAITS_SQL: &str = "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') \
     FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' \
     AND pid <> pg_backend_pid()";

impl WaitSampler {
    /// Connects, then samples about every 100 ms in a thread. One session for the whole
    /// run: a `psql` per sample (Debian's is a Perl wrapper) cost about 30 ms of CPU
    /// each, a seventh of the two cores, in both backends' turns.
    pub(crate) fn start(pg: &PgTarget) -> anyhow::Result<WaitSampler> {
        let mut config: tokio_postgres::Config = pg.url.parse().context("the PostgreSQL URL")?;
        config.password(password(pg)?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (client, connection) = rt
            .block_on(config.connect(tokio_postgres::NoTls))
            .context("connecting to sample pg_stat_activity")?;
        let conn = rt.spawn(connection);
        let backend = rt
            .block_on(client.query_one("SELECT pg_backend_pid()", &[]))
            .context("the sampler's backend pid")?
            .try_get::<_, i32>(0)?;
        let backend = u32::try_from(backend).context("a backend pid")?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let mut waits = Waits::default();
                while !flag.load(Ordering::Relaxed) {
                    let Ok(rows) = client.simple_query(WAITS_SQL).await else {
                        break;
                    };
                    waits.samples += 1;
                    for row in rows {
                        if let tokio_postgres::SimpleQueryMessage::Row(row) = row {
                            let event = row.get(0).unwrap_or("?").to_owned();
                            *waits.events.entry(event).or_default() += 1;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(client);
                let _ = conn.await;
                waits
            })
        });
        Ok(WaitSampler {
            backend,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn finish(mut self) -> Waits {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}
