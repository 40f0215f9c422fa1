//! `countersign-bench` itself must keep working: a tiny run end to end, with its
//! correctness check (audit chain, certificates vs issued events) passing, and the
//! HTTP-only server saying where it listens.
//!
//! `run` starts the `countersign` binary built beside `countersign-bench`: run these
//! with `cargo test --workspace` (scripts/test.sh does), which builds both.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn a_tiny_bench_run_completes_and_its_checks_pass() {
    let report = bench_json(&[
        "run",
        "--flows",
        "60",
        "--clients",
        "4",
        "--single-flows",
        "10",
        "--scale-rows",
        "500",
        "--baseline-seconds",
        "0.1",
        "--json",
    ]);
    assert_eq!(report["check"]["ok"], true, "{report}");
    // The JSON says on how many CPUs it ran (it said 0 before).
    assert!(report["cores"].as_u64().unwrap() >= 1, "{report}");
    // Two comparisons in 4 turns of 15 flows on each side: countersign and the HTTP-only
    // server; the small and the prefilled database.
    assert_eq!(report["multi"]["flows"], 60);
    assert_eq!(report["scaled"]["flows"], 60);
    assert_eq!(report["scale_small"]["flows"], 60);
    // 500 prefilled + 10 + 60 + 60 + 60 flows, each exactly one certificate, over the
    // two databases.
    assert_eq!(report["check"]["certificates"], 690);
    assert!(report["multi"]["flows_per_second"].as_f64().unwrap() > 0.0);
    // The HTTP-only baseline ran the same flows (the load generator checks every answer:
    // ids, "issued", a certificate line) and issued nothing (the count above).
    assert_eq!(report["http_only"]["flows"], 60);
    assert!(report["http_only"]["flows_per_second"].as_f64().unwrap() > 0.0);
    assert!(report["verify"]["events_per_second"].as_f64().unwrap() > 0.0);
    // Both signing rates were measured (side by side), and every serial lookup found its
    // certificate's issuance (the bench fails otherwise) over the prefilled database.
    assert!(report["raw_ed25519"]["per_second"].as_f64().unwrap() > 0.0);
    assert!(report["in_process"]["per_second"].as_f64().unwrap() > 0.0);
    assert_eq!(report["serial_lookup"]["lookups"], 200);
    // Memory: the peak (file pages the start-up audit check maps included) and the
    // servers' own memory after their load, which the peak holds.
    let anon = report["rss_anon_mb"].as_f64().unwrap();
    assert!(
        anon > 1.0 && anon <= report["rss_mb"].as_f64().unwrap(),
        "{report}"
    );
}

#[test]
fn echo_prints_the_address_it_bound_and_answers_there() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign-bench"))
        .args(["echo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().strip_prefix("listening ").unwrap().to_owned();
    assert!(!address.ends_with(":0"), "{line}");
    // The certificate call, answered with a certificate line like countersign's.
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /v1/requests/r-1/certificate HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("\r\n\r\nssh-ed25519-cert-v01@openssh.com AAAA"),
        "{answer}"
    );
}

/// `instructions` counts what each server executed per flow under callgrind: both
/// positive, and countersign's CA work above the HTTP-only server's.
#[test]
fn instructions_per_flow_are_counted_for_both_servers() {
    let counted = bench_json(&["instructions", "--flows", "5", "--warmup", "2", "--json"]);
    let per = |k: &str| counted[k].as_f64().unwrap();
    assert!(
        per("http_only_instructions_per_flow") > 10_000.0,
        "{counted}"
    );
    assert!(
        per("countersign_instructions_per_flow") > per("http_only_instructions_per_flow"),
        "{counted}"
    );
}

/// A `--server-prefix` that does not pass SIGTERM on (a shell script running the server
/// as its child) neither hangs the run nor leaves a server behind: the bench signals the
/// processes the prefix started too.
#[test]
fn a_server_prefix_that_keeps_signals_leaves_no_server_running() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("prefix.sh");
    let started = tmp.path().join("started");
    let script = format!("#!/bin/sh\necho >> '{}'\n\"$@\"\n", started.display());
    std::fs::write(&prefix, script).unwrap();
    std::fs::set_permissions(&prefix, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("bench");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_countersign-bench"))
        .args([
            "run",
            "--flows",
            "8",
            "--clients",
            "2",
            "--single-flows",
            "2",
        ])
        .args([
            "--scale-rows",
            "0",
            "--baseline-seconds",
            "0.05",
            "--json",
            "--dir",
        ])
        .arg(&dir)
        .arg("--server-prefix")
        .arg(&prefix)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let status = loop {
        if let Some(status) = bench.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            bench.kill().unwrap();
            bench.wait().unwrap();
            kill_left_servers(&dir);
            panic!("countersign-bench hung waiting for a server under the prefix");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(status.success());
    let left = kill_left_servers(&dir);
    assert!(left.is_empty(), "servers left running: {left:?}");
    // The server serving the flows did run under the prefix, so the check above is
    // about servers the prefix started.
    let runs = std::fs::read_to_string(&started).unwrap_or_default();
    assert!(runs.lines().count() >= 1, "the prefix never ran");
}

/// The processes whose command line names `dir` (the servers of that bench run), killed;
/// their pids.
fn kill_left_servers(dir: &std::path::Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        panic!("no /proc to look for servers in");
    };
    let left: Vec<u32> = procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir))
        })
        .collect();
    for p in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &p.to_string()])
            .status();
    }
    left
}

/// `countersign-bench ARGS...`, which must succeed: its JSON output.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign-bench"))
        .args(args)
        .output()
        .expect("countersign-bench runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("countersign-bench prints JSON")
}
