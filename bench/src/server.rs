//! The servers the load runs against, as child processes (so that they compete with
//! the load generator for the cores as a deployed server would): `countersign serve` on
//! a fixture's data dir, and the HTTP-only baseline (`countersign-bench echo`). Also
//! what `/proc` says about them: CPU time, the writer thread's CPU time, peak RSS.

use std::io::BufRead as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::fixture::Fixture;

/// A server child process: `countersign serve` or `countersign-bench echo`.
pub(crate) struct Server {
    child: Child,
    pub url: String,
    /// `host:port` of its metrics listener (`None`: the HTTP-only baseline has none).
    metrics: Option<String>,
}

/// The `countersign` binary: the one built beside this one (`cargo build --release
/// --workspace` puts both in `target/release/`), never one found on `PATH`, so that the
/// benchmark measures the code it was built with.
fn countersign_exe() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating countersign-bench")?;
    let exe = me.with_file_name("countersign");
    if !exe.is_file() {
        let build = "cargo build --release --workspace";
        bail!(
            "{} not found: build both binaries (`{build}`)",
            exe.display()
        );
    }
    Ok(exe)
}

impl Fixture {
    /// Starts `countersign serve` (the `countersign` binary beside this one) and waits
    /// until it accepts connections.
    pub(crate) fn start_server(&self) -> anyhow::Result<Server> {
        let exe = countersign_exe()?;
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let on_postgres = std::fs::read_to_string(&self.config)?.contains("backend = \"postgres\"");
        let data = self.config.parent().unwrap_or(&self.dir).join("data");
        let new_replica = on_postgres && !data.join("countersign.mark").exists();
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
            // A PostgreSQL replica's first start joins the shared database without a
            // mark of its own (refused on SQLite, and once there is a mark).
            .args(new_replica.then_some("--new-replica"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting countersign serve")?;
        let mut server = Server {
            child,
            url: format!("http://127.0.0.1:{}", self.port),
            metrics: Some(format!("127.0.0.1:{}", self.metrics_port)),
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

    /// Starts the HTTP-only baseline server (`countersign-bench echo`, see `echo.rs`)
    /// and returns once it listens.
    pub(crate) fn start_echo(&self) -> anyhow::Result<Server> {
        self.start_echo_under(&[])
    }

    /// [`Fixture::start_echo`] under the command `prefix` (e.g. valgrind).
    pub(crate) fn start_echo_under(&self, prefix: &[String]) -> anyhow::Result<Server> {
        let me = std::env::current_exe()?.display().to_string();
        let words: Vec<&str> = prefix
            .iter()
            .map(String::as_str)
            .chain([me.as_str()])
            .collect();
        let mut child = Command::new(words[0])
            .args(&words[1..])
            .args(["echo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting countersign-bench echo")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let Some(address) = line.trim().strip_prefix("listening ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("countersign-bench echo did not start (said {line:?})");
        };
        Ok(Server {
            url: format!("http://{address}"),
            child,
            metrics: None,
        })
    }
}

impl Server {
    /// VmHWM of the server process, in MB: its peak resident memory, counting the
    /// database file's pages it had mapped (the audit check at start maps the file).
    pub(crate) fn peak_rss_mb(&self) -> f64 {
        self.status_mb("VmHWM:")
    }

    /// RssAnon of the server process now, in MB: its own memory (heap, stacks, SQLite's
    /// page caches), without file pages.
    pub(crate) fn anon_rss_mb(&self) -> f64 {
        self.status_mb("RssAnon:")
    }

    /// A `kB` line of `/proc/PID/status`, in MB (0 when it cannot be read).
    fn status_mb(&self, field: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }

    /// The server's process id (valgrind runs the program in its own process).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the server has used so far, in seconds.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// Time the server's writer thread has spent running write batches so far, in
    /// seconds (`countersign_store_writer_busy_seconds_total` on its `/metrics`; 0 when
    /// it cannot be read): on PostgreSQL it waits for the database most of that time.
    pub(crate) fn writer_busy_seconds(&self) -> f64 {
        self.metrics_sum(&["countersign_store_writer_busy_seconds_total "])[0]
    }

    /// Reads sent ahead so far (PostgreSQL): used, stale, unused
    /// (`countersign_store_reads_ahead_total{outcome}`; 0 when it cannot be read).
    pub(crate) fn reads_ahead(&self) -> [f64; 3] {
        let names = ["used", "stale", "unused"]
            .map(|o| format!("countersign_store_reads_ahead_total{{outcome=\"{o}\"}} "));
        let sums = self.metrics_sum(&names.each_ref().map(String::as_str));
        [sums[0], sums[1], sums[2]]
    }

    /// The values of the metric lines starting with each of `prefixes` on the server's
    /// `/metrics` (0 for any not there or when it cannot be read).
    fn metrics_sum(&self, prefixes: &[&str]) -> Vec<f64> {
        let mut out = vec![0.0; prefixes.len()];
        let Some(address) = &self.metrics else {
            return out;
        };
        let scrape = || -> std::io::Result<String> {
            use std::io::{Read as _, Write as _};
            let mut s = TcpStream::connect(address)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(s, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        };
        let Ok(text) = scrape() else {
            return out;
        };
        for line in text.lines() {
            for (prefix, value) in prefixes.iter().zip(out.iter_mut()) {
                if let Some(v) = line.strip_prefix(prefix) {
                    *value = v.trim().parse::<f64>().unwrap_or(0.0);
                }
            }
        }
        out
    }

    /// CPU time the server's writer thread has used so far, in seconds (0 before its
    /// first write).
    pub(crate) fn writer_cpu_seconds(&self) -> f64 {
        let tasks = format!("/proc/{}/task", self.child.id());
        let Ok(entries) = std::fs::read_dir(tasks) else {
            return 0.0;
        };
        entries
            .flatten()
            .filter(|task| {
                // `countersign-writer` (SQLite) or `countersign-pg-writer`, as the kernel
                // keeps them: 15 characters (`countersign-pg` alone is the pool's thread).
                std::fs::read_to_string(task.path().join("comm")).is_ok_and(|name| {
                    let name = name.trim_end();
                    name.starts_with("countersign-wri") || name == "countersign-pg-"
                })
            })
            .map(|task| cpu_seconds(&task.path().join("stat").to_string_lossy()))
            .sum()
    }

    /// SIGTERM and wait: a graceful shutdown. The signal goes to the processes the
    /// child started too, since a `--server-prefix` (a profiler, `/usr/bin/time`, a
    /// shell script) need not pass it on to the server it runs, which would then outlive
    /// the benchmark.
    pub(crate) fn stop(&mut self) -> anyhow::Result<()> {
        let pid = self.child.id();
        let started = descendants(pid);
        signal("-TERM", &[&[pid], started.as_slice()].concat())?;
        self.child.wait()?;
        // From here on only the ones still running are signalled: a pid that ended may
        // already name another process.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left: Vec<u32> = started.iter().copied().filter(|p| alive(*p)).collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                signal("-KILL", &left)?;
                bail!("the server under --server-prefix did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pids`.
fn signal(signal: &str, pids: &[u32]) -> anyhow::Result<()> {
    if !pids.is_empty() {
        Command::new("kill")
            .arg(signal)
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status()?;
    }
    Ok(())
}

/// Whether process `pid` is still running (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
}

/// The processes descended from `pid` (its children, theirs, ...), as `/proc` says now.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    // After the command name (in parentheses): state, then the parent.
                    let (_, rest) = stat.rsplit_once(')')?;
                    Some((p, rest.split_whitespace().nth(1)?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// utime + stime of a `/proc/PID/stat` file, assuming the usual 100 ticks per second.
pub(crate) fn cpu_seconds(stat_path: &str) -> f64 {
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
    /// Kills a server not stopped (and what its prefix started); one already waited for
    /// is left alone, since its pid may name another process by now.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = signal("-KILL", &descendants(self.child.id()));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
