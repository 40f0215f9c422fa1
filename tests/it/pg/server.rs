//! The processes behind [`super::Cluster`]: `initdb`, `pg_ctl` and `psql` from Debian's
//! `/usr/lib/postgresql/<major>/bin`, run as `postgres` when the tests run as root, and
//! the watchdog that stops the server and removes its dir when the test process ends.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{HOST, SUPERUSER};

/// Closes the pipe a watchdog `sh` waits on, on drop or at exit (see the `pg` module doc).
pub(super) struct Watchdog {
    pipe: Mutex<Option<ChildStdin>>,
    child: Mutex<Option<Child>>,
}

impl Watchdog {
    /// Ignores the terminal's signals (Ctrl-C reaches the whole process group) so that
    /// it always gets to clean up once the pipe closes.
    const SCRIPT: &str = r#"trap '' INT HUP TERM
root=$1; shift
read -r _ || :
"$@" -D "$root/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || :
rm -rf -- "$root""#;

    pub(super) fn spawn(root: &Path) -> Watchdog {
        let pg_ctl = as_postgres("pg_ctl", root);
        let mut child = Command::new("sh")
            .args(["-c", Self::SCRIPT, "pg-watchdog"])
            .arg(root)
            .arg(pg_ctl.get_program())
            .args(pg_ctl.get_args())
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh spawns");
        Watchdog {
            pipe: Mutex::new(child.stdin.take()),
            child: Mutex::new(Some(child)),
        }
    }

    /// Closes the pipe and waits until the server is stopped and its dir removed. Never
    /// panics (it runs from `atexit`).
    pub(super) fn finish(&self) {
        drop(lock(&self.pipe).take());
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.wait();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.finish();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The highest installed `/usr/lib/postgresql/<major>/bin`'s `name`.
pub(super) fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let e = e.ok()?;
                let major = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((major, bin))
            })
            .collect();
        dirs.sort();
        let (_, dir) = dirs.pop().expect(
            "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) are missing: \
             run scripts/install-postgres.sh (scripts/test.sh does)",
        );
        dir
    });
    dir.join(name)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `initdb` and `postgres` refuse to run as root: as root, run them as `postgres`.
fn as_postgres(program: &str, root: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin(program));
        cmd
    } else {
        Command::new(bin(program))
    };
    // The test's cwd may be closed to `postgres`.
    cmd.current_dir(root).env("LC_ALL", "C");
    cmd
}

pub(super) fn pg_ctl(root: &Path) -> Command {
    let mut cmd = as_postgres("pg_ctl", root);
    cmd.arg("-D").arg(root.join("data"));
    cmd
}

/// A new dir the server's user owns, with parents it can traverse (/tmp when root).
pub(super) fn temp_root() -> PathBuf {
    let base = if is_root() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let root = tempfile::Builder::new()
        .prefix("countersign-pg-")
        .tempdir_in(base)
        .unwrap()
        .keep();
    if is_root() {
        let (uid, gid) = (id("-u"), id("-g"));
        std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
    }
    root
}

/// `id FLAG postgres`.
fn id(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "postgres"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "no `postgres` user: is PostgreSQL installed?"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// `initdb` with a password-only superuser, then the settings every start uses.
pub(super) fn init_cluster(root: &Path, superuser_password: &str) {
    let pwfile = root.join("pwfile");
    std::fs::write(&pwfile, format!("{superuser_password}\n")).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&pwfile, Some(id("-u")), Some(id("-g"))).unwrap();
    }
    let out = as_postgres("initdb", root)
        .arg("-D")
        .arg(root.join("data"))
        .args([
            "-A",
            "scram-sha-256",
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        // Only initdb's own final fsync of the new files; the server runs with fsync on.
        .arg("--no-sync")
        .output()
        .unwrap();
    std::fs::remove_file(&pwfile).unwrap();
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    append_conf(
        root,
        &format!(
            "listen_addresses = '{HOST}'\nunix_socket_directories = '{}'\n\
             max_connections = 300\nfsync = on\n",
            root.display()
        ),
    );
}

/// Gives the stopped or running cluster in `root` a TLS certificate and key (PEM) and
/// turns TLS on (`ssl = on`); takes effect at the next start. The key is the server's
/// (mode 0600, owned by the user the server runs as).
pub(super) fn install_tls(root: &Path, cert_pem: &str, key_pem: &str) {
    let data = root.join("data");
    for (name, text) in [("server.crt", cert_pem), ("server.key", key_pem)] {
        let path = data.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if is_root() {
            std::os::unix::fs::chown(&path, Some(id("-u")), Some(id("-g"))).unwrap();
        }
    }
    append_conf(
        root,
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
    );
}

/// Appends to `postgresql.conf` (a later line wins over an earlier one).
fn append_conf(root: &Path, lines: &str) {
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(root.join("data/postgresql.conf"))
        .unwrap();
    conf.write_all(lines.as_bytes()).unwrap();
}

/// Starts the server on a free port below the kernel's ephemeral range (so nothing that
/// binds port 0 takes it while a test has PostgreSQL stopped); tries again if another
/// process took it first.
pub(super) fn start_on_free_port(root: &Path) -> u16 {
    let mut last = String::new();
    for _ in 0..10 {
        let port = crate::cli::free_port();
        append_conf(root, &format!("port = {port}\n"));
        match try_start(root) {
            Ok(()) => return port,
            Err(e) if e.contains("could not bind") || e.contains("could not create any") => {
                last = e;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port for PostgreSQL: {last}");
}

/// `pg_ctl start`, waiting until the server accepts connections; `Err` carries pg_ctl's
/// output and the server log.
pub(super) fn try_start(root: &Path) -> Result<(), String> {
    let log = root.join("log");
    let out = pg_ctl(root)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "start"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "pg_ctl start failed: {}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    ))
}

/// Where psql connects.
pub(super) enum Target<'a> {
    Db {
        port: u16,
        user: &'a str,
        db: &'a str,
    },
    Url(&'a str),
}

/// Runs `sql` through psql (statements one by one, stopping at the first error).
pub(super) fn psql(target: &Target<'_>, password: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new(bin("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"]);
    match target {
        Target::Db { port, user, db } => {
            let port = port.to_string();
            cmd.args(["-h", HOST, "-p", &port, "-U", user, "-d", db]);
        }
        Target::Url(url) => {
            cmd.args(["-d", url]);
        }
    }
    let mut child = cmd
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGSSLMODE", "disable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql spawns");
    let mut stdin = child.stdin.take().unwrap();
    let input = sql.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    if !out.status.success() {
        return Err(format!(
            "psql failed: {}\nSQL: {sql}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    Ok(stdout.trim_end_matches('\n').to_owned())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf
}

pub(super) fn random_hex(n: usize) -> String {
    let bytes = random_bytes::<32>();
    hex::encode(&bytes[..n])
}
