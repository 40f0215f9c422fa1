//! The HTTP-only baseline: a server that answers the benchmark's three calls (create,
//! approve, fetch the certificate) with answers of the same shape and size, behind the
//! same per-request layers (body limit, time limit, requests in flight) and through the
//! same accept loop and hyper settings as `countersign serve`, and does nothing else: no
//! authentication, database, policy or signing. Loaded by the same load generator in
//! turns with the real flows, it shows what HTTP, JSON and the load generator alone
//! leave of the machine: the ceiling no CA on this machine can pass in this benchmark.
//! It ignores `--server-prefix` (a profiler's output file would be shared).
//!
//! It runs as a child process (`countersign-bench echo`, started by `run`), like the
//! real server, so that both compete with the load generator for the cores in the same
//! way.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, body::Bytes};
use clap::Args;
use serde_json::{Value, json};

/// `countersign-bench echo` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on; the address bound is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
}

/// A certificate line of the length countersign issues (Ed25519 key, one principal).
fn certificate_line() -> String {
    format!("ssh-ed25519-cert-v01@openssh.com {}", "A".repeat(620))
}

/// Serves until killed.
pub(crate) fn run(args: &EchoArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("listening {}", listener.local_addr()?);
        countersign::api::serve_plain(listener, router(), std::future::pending()).await?;
        Ok(ExitCode::SUCCESS)
    })
}

fn router() -> Router {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Router::new()
        .route(
            "/v1/requests",
            post(|body: Bytes| async move {
                // Parsed as JSON (the real server goes on to typed fields and the key).
                let req: Value = serde_json::from_slice(&body)
                    .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
                let id = format!("r-{:012}", NEXT.fetch_add(1, Ordering::Relaxed));
                Ok::<_, (StatusCode, String)>((
                    StatusCode::CREATED,
                    Json(view(&id, &req, "pending", false)),
                ))
            }),
        )
        .route(
            "/v1/requests/{id}/approve",
            post(|Path(id): Path<String>| async move {
                Json(view(&id, &Value::Null, "issued", true))
            }),
        )
        .route(
            "/v1/requests/{id}/certificate",
            get(|| async { certificate_line() + "\n" }),
        )
}

/// A request as countersign shows it: the same fields, of about the same size.
fn view(id: &str, req: &Value, status: &str, issued: bool) -> Value {
    let at = "2026-11-28T08:00:00Z";
    json!({
        "id": id,
        "role": req.get("role").unwrap_or(&json!("role-00")),
        "requester": "user-000",
        "reason": req.get("reason").unwrap_or(&json!("bench flow 0")),
        "status": status,
        "created_at": at,
        "expires_at": "2026-11-28T09:00:00Z",
        "ttl_seconds": 1800,
        "principals": ["role-00"],
        "public_key_fingerprint": "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "approvals": if issued {
            json!([{"approver": "user-150", "at": at, "comment": null}])
        } else {
            json!([])
        },
        "approvals_required": 1,
        "approvals_needed": if issued { 0 } else { 1 },
        "waiting_for": if issued {
            json!([])
        } else {
            json!([{"approvers": ["group:approvers"], "approvals": 1, "remaining": 1}])
        },
        "decided_at": if issued { json!(at) } else { Value::Null },
        "decided_by": if issued { json!("user-150") } else { Value::Null },
        "decision_code": null,
        "decision_note": null,
        "certificate": if issued { json!({
            "serial": "1234567890123456789",
            "key_id": format!("countersign:{id}:user-000:role-00"),
            "valid_after": at,
            "valid_before": "2026-11-28T08:30:00Z",
            "revoked": null,
        }) } else { Value::Null },
    })
}
