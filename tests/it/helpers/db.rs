//! The test servers' databases: which backend, and rows written straight into it.

use std::path::{Path, PathBuf};

use countersign::config::Config;

use countersign::state::Access;

use super::TestApp;

/// `countersign serve --new-replica`: a replica's first start on a shared database.
const NEW_REPLICA: Access = Access::Serve {
    accept_rollback: None,
    new_replica: true,
};

/// Where a test server keeps its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The SQLite file in the data folder.
    Sqlite,
    /// A fresh database on the test PostgreSQL cluster (`tests/it/pg.rs`).
    Postgres,
}

impl Backend {
    /// The backend tests run on unless they name one: `COUNTERSIGN_TEST_BACKEND`
    /// (`sqlite`, the default, or `postgres`), so that the whole suite can run on either.
    pub fn from_env() -> Backend {
        match std::env::var("COUNTERSIGN_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            Ok("sqlite") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("COUNTERSIGN_TEST_BACKEND={other}: sqlite or postgres"),
        }
    }
}

/// Writes requests of `requester` for `role` with `status` straight into the server's
/// database, one per creation time (unix seconds; each expires an hour after), in one
/// transaction; returns their ids in that order. For lists longer than a test could
/// create through the API in good time.
pub fn insert_requests(
    app: &TestApp,
    requester: &str,
    role: &str,
    status: &str,
    created: impl IntoIterator<Item = i64>,
) -> Vec<String> {
    let rows: Vec<(String, i64)> = created
        .into_iter()
        .map(|at| {
            let id = countersign::names::RequestId::random(&mut rand::rng());
            (id.as_str().to_owned(), at)
        })
        .collect();
    let columns = "INSERT INTO requests (id, role, requester, reason, ttl_seconds, public_key, \
                   key_fingerprint, principals, role_digest, status, created_at, expires_at)";
    if let Some(pg) = &app.pg {
        // Ids, names and statuses are the test's own plain words: no quoting needed.
        let mut sql = String::from("BEGIN;\n");
        for chunk in rows.chunks(1000) {
            let values: Vec<String> = chunk
                .iter()
                .map(|(id, at)| {
                    format!(
                        "('{id}', '{role}', '{requester}', 'bulk', 1800, 'ssh-ed25519 AAAA', \
                         'SHA256:x', '[]', 'x', '{status}', {at}, {})",
                        at + 3600
                    )
                })
                .collect();
            sql.push_str(&format!("{columns} VALUES {};\n", values.join(",")));
        }
        sql.push_str("COMMIT;");
        pg.psql(&sql);
    } else {
        let mut conn = rusqlite::Connection::open(app.db_path()).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        let tx = conn.transaction().unwrap();
        for (id, at) in &rows {
            tx.execute(
                &format!(
                    "{columns} VALUES (?1, ?2, ?3, 'bulk', 1800, 'ssh-ed25519 AAAA', 'SHA256:x', \
                     '[]', 'x', ?4, ?5, ?6)"
                ),
                rusqlite::params![id, role, requester, status, at, at + 3600],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    rows.into_iter().map(|(id, _)| id).collect()
}

impl TestApp {
    /// A second replica of `first` (on PostgreSQL): a new data folder holding only a copy
    /// of the CA key, the same config and database.
    pub async fn spawn_replica_of(first: &TestApp, policy: &str) -> TestApp {
        let pg = first
            .pg
            .clone()
            .expect("replicas share a PostgreSQL database");
        let dir = tempfile::tempdir().expect("temp dir");
        let key = first.service.config().ca.key_file.clone();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).expect("data dir");
        std::fs::set_permissions(
            &data,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700),
        )
        .expect("mode");
        let copy = data.join(key.file_name().expect("key file name"));
        std::fs::copy(&key, &copy).expect("copy the CA key");
        // The host CA key is deployed the same way, when the first replica has one.
        if let Some(host) = &first.service.config().host_ca {
            let name = host.key_file.file_name().expect("host CA key file name");
            std::fs::copy(&host.key_file, data.join(name)).expect("copy the host CA key");
        }
        write_config(dir.path(), policy, Some(&pg));
        let tokens = first.tokens.clone();
        Self::start_as(dir, Some(pg), tokens, first.clock.clone(), &NEW_REPLICA).await
    }

    /// Runs SQL straight on the database, as a second process would.
    pub fn sql(&self, sql: &str) {
        if let Some(pg) = &self.pg {
            pg.psql(sql);
            return;
        }
        let conn = rusqlite::Connection::open(self.db_path()).expect("open db");
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .expect("busy timeout");
        conn.execute_batch(sql).expect("sql");
    }

    /// Replaces the config file with `config` (keeping this server's `[storage]`), as an
    /// operator editing it would; takes effect at a restart or reload.
    pub fn write_config(&self, config: impl AsRef<str>) -> std::io::Result<()> {
        write_config(self.dir.path(), config.as_ref(), self.pg.as_ref());
        Ok(())
    }

    /// `policy` loaded as this server's config file would be (on this server's backend).
    pub fn config_of(&self, policy: &str) -> Config {
        let text = match &self.pg {
            Some(pg) => format!("{policy}\n{}", pg.storage_toml()),
            None => policy.to_owned(),
        };
        Config::from_toml_str(&text, &self.config_path(), self.dir.path()).expect("config")
    }

    /// Path of the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.service.config().database_path()
    }

    /// Number of rows in a table, read straight from the database.
    pub fn count(&self, sql: &str) -> i64 {
        if let Some(pg) = &self.pg {
            let out = pg.psql(sql);
            return out
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{sql}: {out:?}"));
        }
        let conn = rusqlite::Connection::open(self.db_path()).expect("open db");
        conn.query_row(sql, [], |r| r.get(0)).expect("count")
    }
}

/// Writes `config` as the config file in `dir`, with the `[storage]` section and the
/// password file of `pg` when the state is in PostgreSQL.
pub fn write_config(dir: &Path, config: &str, pg: Option<&crate::pg::PgDatabase>) {
    let text = match pg {
        Some(pg) => {
            pg.write_password_file(dir);
            format!("{config}\n{}", pg.storage_toml())
        }
        None => config.to_owned(),
    };
    std::fs::write(dir.join("countersign.toml"), text).expect("write config");
}
