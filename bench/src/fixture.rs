//! The benchmark's world: a generated policy (200 users, 20 roles, conflicts, N-of-M and
//! multi-step roles), its data dir, CA key and tokens, and the prefill of a million
//! issued flows (through the store's SQLite-only bulk loader, the library's
//! `src/store/prefill.rs`). Servers on it start in `server.rs`; what is measured on it
//! after the load, in `checks.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use countersign::config::Config;
use countersign::names::UserName;
use countersign::service::{self, Service};
use countersign::state::Access;
use countersign::store::prefill;

/// Users 0..REQUESTERS request; the rest approve.
pub(crate) const USERS: usize = 200;
pub(crate) const REQUESTERS: usize = 150;
/// Roles 0..SIMPLE_ROLES need one approval from group ops; the others are 2-of-M or
/// two-step roles, with conflicts declared between them and the simple ones.
pub(crate) const ROLES: usize = 20;
pub(crate) const SIMPLE_ROLES: usize = 10;

/// The benchmark's data dir, config and tokens.
pub(crate) struct Fixture {
    pub dir: PathBuf,
    pub config: PathBuf,
    pub port: u16,
    /// Where its `/metrics` listens (the writer thread's busy time is read there).
    pub metrics_port: u16,
    /// Token of user i.
    pub tokens: Vec<String>,
    /// A command (and arguments) the server runs under, for profiling.
    pub server_prefix: Option<String>,
}

/// How long the prefill took.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Prefill {
    pub certificates: usize,
    pub seconds: f64,
}

pub(crate) fn policy(port: u16, metrics_port: u16) -> String {
    let mut t = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\n\
         # every load-generator client comes from 127.0.0.1\n\
         max_connections_per_address = 65536\n\n\
         [requests]\npending_ttl = \"1h\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n"
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
            "[roles.role-{r:02}]\nprincipals = [\"svc{r:02}\", \"{{user}}\"]\n\
             requesters = [\"group:dev\"]\n"
        );
        let _ = match r {
            r if r < SIMPLE_ROLES => writeln!(t, "approvers = [\"group:ops\"]\n"),
            r if r < 15 => writeln!(t, "approvers = [\"group:ops\"]\napprovals = 2\n"),
            _ => writeln!(
                t,
                "approval_steps = [{{ approvers = [\"group:dba\"], approvals = 1 }}, \
                 {{ approvers = [\"group:security\"], approvals = 1 }}]\n"
            ),
        };
    }
    for r in 0..SIMPLE_ROLES {
        let _ = writeln!(
            t,
            "[[conflicts]]\nroles = [\"role-{r:02}\", \"role-{:02}\"]\n\
             reason = \"bench conflict\"\n",
            r + SIMPLE_ROLES
        );
    }
    t
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Fixture {
    /// Writes the policy, creates the database, CA key and one token per user.
    pub(crate) fn create(dir: &Path, server_prefix: Option<String>) -> anyhow::Result<Fixture> {
        Self::create_with(dir, server_prefix, "")
    }

    /// [`Fixture::create`] with `extra` appended to the config (a `[storage]` section).
    pub(crate) fn create_with(
        dir: &Path,
        server_prefix: Option<String>,
        extra: &str,
    ) -> anyhow::Result<Fixture> {
        let (port, metrics_port) = (free_port()?, free_port()?);
        let config = dir.join("bench.toml");
        std::fs::write(&config, format!("{}\n{extra}", policy(port, metrics_port)))?;
        let cfg = Config::load(&config)?;
        let svc = Service::open(
            cfg,
            Access::Init {
                new_database: false,
            },
            "bench",
        )?;
        let mut tokens = Vec::with_capacity(USERS);
        for u in 0..USERS {
            let user = UserName::parse(&format!("u{u:03}"))?;
            let spec = service::TokenSpec::default();
            let (token, _) =
                service::create_token(svc.store(), &svc.config(), &user, "bench", &spec)?;
            tokens.push(token);
        }
        Ok(Fixture {
            dir: dir.to_owned(),
            config,
            port,
            metrics_port,
            tokens,
            server_prefix,
        })
    }

    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.config)?)
    }

    /// Inserts `n` issued requests with approvals, (expired) certificates and their audit
    /// events, continuing the hash chain, in one transaction: user i % REQUESTERS asked
    /// for simple role i % SIMPLE_ROLES and one of the approvers approved.
    pub(crate) fn prefill(&self, n: usize) -> anyhow::Result<Prefill> {
        let cfg = self.load()?;
        let start = Instant::now();
        prefill::issued_flows(&cfg.database_path(), Utc::now(), n, |i| {
            let requester = format!("u{:03}", i % REQUESTERS);
            prefill::Flow {
                approver: format!("u{:03}", REQUESTERS + i % (USERS - REQUESTERS)),
                role: format!("role-{:02}", i % SIMPLE_ROLES),
                principals: vec![format!("svc{:02}", i % SIMPLE_ROLES), requester.clone()],
                requester,
            }
        })?;
        Ok(Prefill {
            certificates: n,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
