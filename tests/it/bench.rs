//! `countersign bench` itself must keep working: a tiny run end to end, with its
//! correctness check (audit chain, certificates vs issued events) passing.

use std::process::Command;

#[test]
fn a_tiny_bench_run_completes_and_its_checks_pass() {
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args([
            "bench",
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
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["check"]["ok"], true, "{report}");
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
}
