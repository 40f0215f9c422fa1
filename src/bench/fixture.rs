//! The benchmark's world: a generated policy (200 users, 20 roles, conflicts, N-of-M and
//! multi-step roles), tokens, a real `countersign serve` child process, and a fast prefill
//! of a million certificates straight into SQLite.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{SecondsFormat, Utc};
use rusqlite::params;
use serde::Serialize;

use crate::audit::{self, Fields, GENESIS};
use crate::config::Config;
use crate::names::{RequestId, UserName};
use crate::service::{self, Service};
use crate::store::Store;

/// Users 0..REQUESTERS request; the rest approve.
pub const USERS: usize = 200;
pub const REQUESTERS: usize = 150;
/// Roles 0..SIMPLE_ROLES need one approval from group ops; the others are 2-of-M or
/// two-step roles, with conflicts declared between them and the simple ones.
pub const ROLES: usize = 20;
pub const SIMPLE_ROLES: usize = 10;

/// The benchmark's data dir, config and tokens.
pub struct Fixture {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    /// Token of user i.
    pub tokens: Vec<String>,
    /// A command (and arguments) the server runs under, for profiling.
    pub server_prefix: Option<String>,
}

/// A `countersign serve` child process.
pub struct Server {
    child: Child,
    pub url: String,
}

/// How long the prefill took.
#[derive(Debug, Clone, Serialize)]
pub struct Prefill {
    pub certificates: usize,
    pub seconds: f64,
}

/// `audit verify` speed.
#[derive(Debug, Clone, Serialize)]
pub struct VerifySpeed {
    pub events: i64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// How long `audit --serial N` (the story of one certificate) takes on the database.
#[derive(Debug, Clone, Serialize)]
pub struct SerialLookup {
    pub lookups: usize,
    pub p50_ms: f64,
    pub max_ms: f64,
}

/// End-of-run correctness.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub certificates: i64,
    pub issued_events: i64,
    pub distinct_serials: i64,
    pub audit_events: i64,
    pub message: String,
}

fn policy(port: u16) -> String {
    let mut t = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n# every load-generator client comes from 127.0.0.1\nmax_connections_per_address = 65536\n\n[requests]\npending_ttl = \"1h\"\n\n"
    );
    for u in 0..USERS {
        let group = if u < REQUESTERS {
            "dev"
        } else if u % 2 == 0 {
            "ops\", \"dba"
        } else {
            "ops\", \"security"
        };
        let _ = writeln!(
            t,
            "[users.u{u:03}]\ngroups = [\"{group}\"]\nadmin = {}\n",
            u == USERS - 1
        );
    }
    for r in 0..ROLES {
        let _ = write!(
            t,
            "[roles.role-{r:02}]\nprincipals = [\"svc{r:02}\", \"{{user}}\"]\nrequesters = [\"group:dev\"]\n"
        );
        let _ = match r {
            r if r < SIMPLE_ROLES => writeln!(t, "approvers = [\"group:ops\"]\n"),
            r if r < 15 => writeln!(t, "approvers = [\"group:ops\"]\napprovals = 2\n"),
            _ => writeln!(
                t,
                "approval_steps = [{{ approvers = [\"group:dba\"], approvals = 1 }}, {{ approvers = [\"group:security\"], approvals = 1 }}]\n"
            ),
        };
    }
    for r in 0..SIMPLE_ROLES {
        let _ = writeln!(
            t,
            "[[conflicts]]\nroles = [\"role-{r:02}\", \"role-{:02}\"]\nreason = \"bench conflict\"\n",
            r + SIMPLE_ROLES
        );
    }
    t
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Fixture {
    /// Writes the policy, creates the database, CA key and one token per user.
    pub fn create(dir: &Path, server_prefix: Option<String>) -> anyhow::Result<Fixture> {
        let port = free_port()?;
        let config = dir.join("bench.toml");
        std::fs::write(&config, policy(port))?;
        let cfg = Config::load(&config)?;
        let svc = Service::open(
            cfg,
            crate::state::Access::Init {
                new_database: false,
            },
            "bench",
        )?;
        let mut tokens = Vec::with_capacity(USERS);
        for u in 0..USERS {
            let user = UserName::parse(&format!("u{u:03}"))?;
            tokens.push(service::create_token(
                svc.store(),
                &svc.config().policy,
                &user,
                "bench",
            )?);
        }
        Ok(Fixture {
            dir: dir.to_owned(),
            config,
            port,
            tokens,
            server_prefix,
        })
    }

    fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }

    /// Starts `countersign serve` (this very binary) and waits until it accepts connections.
    pub fn start_server(&self) -> anyhow::Result<Server> {
        let exe = std::env::current_exe()?;
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let mut words: Vec<String> = self
            .server_prefix
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        words.push(exe.display().to_string());
        let child = Command::new(&words[0])
            .args(&words[1..])
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting countersign serve")?;
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{}", self.port),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "server exited with {status}; see {}",
                    self.dir.join("server.log").display()
                );
            }
            if Instant::now() > deadline {
                bail!("server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// Starts the HTTP-only baseline server (`countersign bench-echo`, see `echo.rs`)
    /// and returns once it listens.
    pub fn start_echo(&self) -> anyhow::Result<Server> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["bench-echo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting countersign bench-echo")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let Some(address) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("bench-echo did not start (said {line:?})");
        };
        Ok(Server {
            url: format!("http://{address}"),
            child,
        })
    }

    /// Inserts `n` issued requests with approvals, (expired) certificates and their audit
    /// events, continuing the hash chain, in one transaction.
    pub fn prefill(&self, n: usize) -> anyhow::Result<Prefill> {
        let cfg = self.load()?;
        let start = Instant::now();
        let mut conn = rusqlite::Connection::open(cfg.database_path())?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        let tx = conn.transaction()?;
        let (mut seq, mut prev): (i64, String) = tx
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap_or((0, GENESIS.to_owned()));
        let at =
            (Utc::now() - chrono::Duration::days(30)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let t0 = Utc::now().timestamp() - 30 * 86_400;
        {
            let mut req = tx.prepare("INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, key_fingerprint, principals, role_digest, status, created_at, expires_at, decided_at, decided_by) VALUES (?1, ?2, ?3, 'prefilled', 1800, 'ssh-ed25519 AAAA', 'SHA256:x', '[\"svc\"]', 'x', 'issued', ?4, ?5, ?4, ?6)")?;
            let mut appr =
                tx.prepare("INSERT INTO approvals (request_id, approver, at) VALUES (?1, ?2, ?3)")?;
            let mut cert = tx.prepare("INSERT INTO certificates (serial, request_id, requester, role, key_id, valid_after, valid_before, certificate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'ssh-ed25519-cert-v01@openssh.com AAAA')")?;
            let mut ev = tx.prepare("INSERT INTO audit (seq, at, actor, action, request_id, serial, detail, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")?;
            // Each certificate's story as the service writes it (audit verify checks that
            // an issuance follows its request and approvals): created, approved, issued.
            let mut event = |actor: &str,
                             action: &str,
                             request: &str,
                             serial: Option<&str>,
                             detail: &str|
             -> rusqlite::Result<()> {
                seq += 1;
                let hash = Fields {
                    seq,
                    at: &at,
                    actor,
                    action,
                    request_id: Some(request),
                    serial,
                    detail,
                }
                .hash(&prev);
                ev.execute(params![
                    seq, at, actor, action, request, serial, detail, prev, hash
                ])?;
                prev = hash;
                Ok(())
            };
            let mut rng = rand::rng();
            for i in 0..n {
                let id = RequestId::random(&mut rng);
                let requester = format!("u{:03}", i % REQUESTERS);
                let approver = format!("u{:03}", REQUESTERS + i % (USERS - REQUESTERS));
                let role = format!("role-{:02}", i % SIMPLE_ROLES);
                let serial = (1u64 << 62) + i as u64;
                let key_id = format!("countersign:{id}:{requester}:{role}");
                let created = t0 + i as i64 / 1000;
                req.execute(params![
                    id.as_str(),
                    role,
                    requester,
                    created,
                    created + 3600,
                    approver
                ])?;
                appr.execute(params![id.as_str(), approver, created])?;
                cert.execute(params![
                    serial as i64,
                    id.as_str(),
                    requester,
                    role,
                    key_id,
                    created - 60,
                    created + 1800
                ])?;
                let serial_text = serial.to_string();
                let created =
                    serde_json::json!({ "role": role, "reason": "prefilled", "ttl_seconds": 1800 });
                event(
                    &requester,
                    "request.created",
                    id.as_str(),
                    None,
                    &created.to_string(),
                )?;
                let approved =
                    serde_json::json!({ "role": role, "requester": requester, "comment": null });
                event(
                    &approver,
                    "request.approved",
                    id.as_str(),
                    None,
                    &approved.to_string(),
                )?;
                let detail = serde_json::json!({
                    "serial": serial_text, "key_id": key_id, "requester": requester, "role": role,
                    "principals": [format!("svc{:02}", i % SIMPLE_ROLES), requester],
                    "approvals": [{ "approver": approver, "step": 1 }], "reason": "prefilled",
                    "approvals_required": [1],
                })
                .to_string();
                event(
                    &approver,
                    "certificate.issued",
                    id.as_str(),
                    Some(&serial_text),
                    &detail,
                )?;
            }
        }
        tx.commit()?;
        Ok(Prefill {
            certificates: n,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Times `audit verify` over the whole database.
    pub fn verify_speed(&self) -> anyhow::Result<VerifySpeed> {
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
    pub fn serial_lookups(&self, n: usize) -> anyhow::Result<SerialLookup> {
        let store = Store::open(&self.load()?.database_path())?;
        let last: i64 = store
            .read(|c| c.bench_scalar("SELECT coalesce(max(id), 0) FROM certificates", None))?;
        let mut times = Vec::with_capacity(n);
        for i in 0..n.min(last.max(0) as usize) {
            let id = 1 + (i as i64 * last) / n as i64;
            let serial: i64 = store.read(|c| {
                c.bench_scalar(
                    "SELECT serial FROM certificates WHERE id >= ?1 ORDER BY id LIMIT 1",
                    Some(id),
                )
            })?;
            let filter = audit::Filter {
                serial: Some(serial as u64),
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
    pub fn check(&self) -> anyhow::Result<Check> {
        let store = Store::open(&self.load()?.database_path())?;
        let chain = audit::verify_store(&store);
        let count =
            |sql: &str| -> anyhow::Result<i64> { Ok(store.read(|c| c.bench_scalar(sql, None))?) };
        let certificates = count("SELECT count(*) FROM certificates")?;
        let issued_events =
            count("SELECT count(*) FROM audit WHERE action = 'certificate.issued'")?;
        let distinct_serials =
            count("SELECT count(DISTINCT serial) FROM audit WHERE action = 'certificate.issued'")?;
        let orphans = count(
            "SELECT count(*) FROM certificates c WHERE (SELECT count(*) FROM audit a WHERE a.serial = CAST(c.serial AS TEXT) AND a.action = 'certificate.issued') != 1",
        )?;
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
                        "{certificates} certificates, {issued_events} issued events, {distinct_serials} serials, {orphans} without exactly one event"
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
    pub fn and(self, other: Check) -> Check {
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

impl Server {
    /// VmHWM of the server process, in MB.
    pub fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// CPU time the server's writer thread has used so far, in seconds (0 before its
    /// first write).
    pub fn writer_cpu_seconds(&self) -> f64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let Ok(entries) = std::fs::read_dir(tasks) else {
            return 0.0;
        };
        entries
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|name| name.starts_with("countersign-wri"))
            })
            .map(|task| cpu_seconds(&task.path().join("stat").to_string_lossy()))
            .sum()
    }

    /// SIGTERM and wait: a graceful shutdown.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

/// utime + stime of a `/proc/PID/stat` file, assuming the usual 100 ticks per second.
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
