//! A throw-away PostgreSQL cluster for the tests that run countersign on PostgreSQL:
//! `initdb` into a temp dir as the `postgres` user, the server on 127.0.0.1 and a free
//! port, and per test a fresh database owned by a fresh login role ([`fresh_database`]).
//!
//! One shared cluster per test process ([`cluster`]) starts on first use. A test that
//! stops or restarts PostgreSQL takes a private cluster ([`Cluster::start_new`]) instead,
//! so that it does not pull the server from under the tests running beside it.
//!
//! Nothing outlives the test process: each cluster has a watchdog, a small `sh` that
//! waits on a pipe from this process and, when the pipe closes, stops the server
//! (`pg_ctl stop -m immediate`) and removes the temp dir. The kernel closes the pipe
//! however the process ends (normal exit, failed test, abort, kill -9). On an ordinary
//! exit an `atexit` hook (shared cluster) or `Drop` (private one) closes it first and
//! waits for the watchdog, so the cleanup is done when the process is.

mod server;

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use server::{
    Target, Watchdog, init_cluster, pg_ctl, psql, random_hex, start_on_free_port, temp_root,
    try_start,
};

/// The superuser `initdb` creates.
const SUPERUSER: &str = "postgres";
/// Where the server listens; also what [`PgDatabase::url`] names.
const HOST: &str = "127.0.0.1";

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// The cluster shared by every test in this process, started on first use. Do not stop
/// or restart it (other tests are using it): take a [`Cluster::start_new`] for that.
pub fn cluster() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let cluster = Cluster::start_new();
        // SAFETY: registers a plain `extern "C" fn` that takes no arguments and never
        // unwinds; statics are never dropped, so this is the shared cluster's `Drop`.
        unsafe { libc::atexit(stop_shared_cluster) };
        cluster
    })
}

extern "C" fn stop_shared_cluster() {
    if let Some(cluster) = SHARED.get() {
        cluster.watchdog.finish();
    }
}

/// A fresh database on the shared cluster, owned by a fresh login role: what one test
/// gives one countersign server.
pub fn fresh_database() -> PgDatabase {
    cluster().fresh_database()
}

/// A running PostgreSQL cluster in a temp dir (data, log, Unix socket), stopped and
/// removed when dropped or when the test process ends.
pub struct Cluster {
    root: PathBuf,
    port: u16,
    superuser_password: String,
    watchdog: Watchdog,
}

impl Cluster {
    /// A private cluster, for a test that stops or restarts PostgreSQL (about 1 s to
    /// start). Other tests use the shared [`cluster`].
    pub fn start_new() -> Cluster {
        let root = temp_root();
        // First, so that a failure below still removes the dir.
        let watchdog = Watchdog::spawn(&root);
        let superuser_password = random_hex(16);
        init_cluster(&root, &superuser_password);
        let port = start_on_free_port(&root);
        Cluster {
            root,
            port,
            superuser_password,
            watchdog,
        }
    }

    /// The TCP port; it stays the same across [`Cluster::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// Stops the server: `mode` is `"fast"` (clean shutdown, clients cut off) or
    /// `"immediate"` (like a crash: recovery runs at the next start).
    pub fn stop(&self, mode: &str) {
        assert!(
            mode == "fast" || mode == "immediate",
            "stop mode {mode:?}: use \"fast\" or \"immediate\""
        );
        let out = pg_ctl(&self.root)
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped server again, on the same port and data, and returns once it
    /// accepts connections.
    pub fn start(&self) {
        if let Err(e) = try_start(&self.root) {
            panic!("{e}");
        }
    }

    /// Serves TLS with `cert_pem` and `key_pem` from now on (restarts the server).
    pub fn use_tls(&self, cert_pem: &str, key_pem: &str) {
        server::install_tls(&self.root, cert_pem, key_pem);
        self.restart("fast");
    }

    /// [`Cluster::stop`] with `mode`, then [`Cluster::start`].
    pub fn restart(&self, mode: &str) {
        self.stop(mode);
        self.start();
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`, for admin use in tests
    /// (the product refuses passwords in URLs; this is for test code only).
    pub fn superuser_url(&self) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{HOST}:{}/postgres",
            self.superuser_password, self.port
        )
    }

    /// Runs `sql` (one or more statements) in database `db` as the superuser and returns
    /// psql's unaligned, tuples-only output (`-A -t`: one row a line, columns split by
    /// `|`), without the final newline. Panics with psql's stderr on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let target = Target::Db {
            port: self.port,
            user: SUPERUSER,
            db,
        };
        psql(&target, &self.superuser_password, sql).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A fresh database on this cluster owned by a fresh login role (unique names
    /// `cs_<n>_<pid>`, random password); only that role may connect to it. Safe to call
    /// from many threads at once.
    pub fn fresh_database(&self) -> PgDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("cs_{n}_{}", std::process::id());
        let password = random_hex(16);
        // CREATE DATABASE cannot run in a transaction: psql sends these one by one.
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {name} LOGIN PASSWORD '{password}';\n\
                 CREATE DATABASE {name} OWNER {name};\n\
                 REVOKE ALL ON DATABASE {name} FROM PUBLIC;\n"
            ),
        );
        PgDatabase {
            url: format!("postgres://{name}@{HOST}:{}/{name}", self.port),
            user: name.clone(),
            name,
            password,
            port: self.port,
        }
    }
}

/// One test's database: what a countersign config names (`url`) and the secret it
/// reads from a file (`password`).
#[derive(Clone)]
pub struct PgDatabase {
    /// The database name.
    pub name: String,
    /// The login role that owns the database.
    pub user: String,
    /// The role's password; never part of `url`.
    pub password: String,
    /// `postgres://USER@127.0.0.1:PORT/NAME`, without a password.
    pub url: String,
    port: u16,
}

impl PgDatabase {
    /// Writes the password (one line) to `dir/pg-password` with mode 0600, as the
    /// product wants its `password_file`; returns the path.
    pub fn write_password_file(&self, dir: &Path) -> PathBuf {
        let path = dir.join("pg-password");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        // An existing file keeps its mode on open: set it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .unwrap();
        writeln!(file, "{}", self.password).unwrap();
        path
    }

    /// The `[storage]` section of a countersign config for this database, with the
    /// password in `pg-password` beside the config (see
    /// [`PgDatabase::write_password_file`]).
    pub fn storage_toml(&self) -> String {
        format!(
            "[storage]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"pg-password\"\n",
            self.url
        )
    }

    /// Runs `sql` in this database as its owner role; output as [`Cluster::psql`].
    /// A PostgreSQL client tool (`pg_dump`, `pg_restore`) connected to this database as
    /// its owner: add the tool's own arguments.
    pub fn tool(&self, name: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(server::bin(name));
        cmd.env("PGPASSWORD", &self.password)
            .args(["-h", HOST, "-p", &self.port.to_string(), "-U", &self.user])
            .args(["-d", &self.name]);
        cmd
    }

    /// `pg_dump -Fc` of this database into `to`, as an operator's backup.
    pub fn dump(&self, to: &Path) {
        let out = self.tool("pg_dump").args(["-Fc", "-f"]).arg(to).output();
        let out = out.expect("pg_dump runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_restore --clean` of a dump made by [`PgDatabase::dump`] over this database.
    pub fn restore(&self, from: &Path) {
        let out = self
            .tool("pg_restore")
            .args(["--clean", "--if-exists", "--no-owner"])
            .arg(from)
            .output()
            .expect("pg_restore runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn psql(&self, sql: &str) -> String {
        let target = Target::Db {
            port: self.port,
            user: &self.user,
            db: &self.name,
        };
        psql(&target, &self.password, sql).unwrap_or_else(|e| panic!("{e}"))
    }
}

#[test]
fn fresh_databases_are_separate() {
    let (a, b) = (fresh_database(), fresh_database());
    assert_ne!(a.name, b.name);
    assert_ne!(a.user, b.user);
    a.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1);");
    assert_eq!(a.psql("SELECT count(*) FROM t"), "1");
    let missing = "SELECT to_regclass('public.t') IS NULL";
    assert_eq!(b.psql(missing), "t");
    assert_eq!(cluster().psql(&b.name, missing), "t");
    let admin = cluster().superuser_url();
    let both = format!(
        "SELECT count(*) FROM pg_database WHERE datname IN ('{}', '{}')",
        a.name, b.name
    );
    assert_eq!(psql(&Target::Url(&admin), "", &both).unwrap(), "2");
    // One test's role cannot even connect to another's database.
    let other = Target::Db {
        port: cluster().port(),
        user: &b.user,
        db: &a.name,
    };
    let refused = psql(&other, &b.password, "SELECT 1").unwrap_err();
    assert!(refused.contains("permission denied"), "{refused}");
}

#[test]
fn restart_immediate_keeps_committed_data_and_port() {
    let cluster = Cluster::start_new();
    let db = cluster.fresh_database();
    db.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);");
    let (port, url) = (cluster.port(), db.url.clone());
    cluster.restart("immediate");
    assert_eq!(cluster.port(), port);
    assert_eq!(db.psql("SELECT sum(x) FROM t"), "3");
    assert_eq!(db.url, url);
    cluster.restart("fast");
    assert_eq!(db.psql("SELECT sum(x) FROM t"), "3");
    let root = cluster.root.clone();
    drop(cluster);
    assert!(!root.exists(), "{} is left behind", root.display());
}

#[test]
fn url_has_no_password_and_the_password_file_logs_in() {
    let db = fresh_database();
    assert_eq!(
        db.url,
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            db.user,
            cluster().port(),
            db.name
        )
    );
    assert_eq!(cluster().host(), "127.0.0.1");
    assert!(!db.url.contains(&db.password));
    assert_eq!(
        db.storage_toml(),
        format!(
            "[storage]\nbackend = \"postgres\"\nurl = \"{}\"\npassword_file = \"pg-password\"\n",
            db.url
        )
    );
    let dir = tempfile::tempdir().unwrap();
    let path = db.write_password_file(dir.path());
    assert_eq!(path, dir.path().join("pg-password"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let password = text.lines().next().unwrap();
    let me = psql(&Target::Url(&db.url), password, "SELECT current_user").unwrap();
    assert_eq!(me, db.user);
    // The password is what lets the role in: a wrong one is refused.
    let wrong = psql(&Target::Url(&db.url), "wrong", "SELECT 1").unwrap_err();
    assert!(wrong.contains("password authentication failed"), "{wrong}");
}
