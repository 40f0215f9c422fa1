//! Full durable flows over loopback HTTP: create request -> approve (signs, audit row,
//! group commit with `synchronous=FULL`) -> fetch certificate, from C concurrent clients.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{anyhow, bail};
use axum::body::Bytes;
use axum::http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fixture::{Fixture, REQUESTERS, SIMPLE_ROLES, USERS};
use crate::server::{Server, cpu_seconds};

/// Latency percentiles of one call, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// One load run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FlowRun {
    pub clients: usize,
    pub flows: usize,
    pub seconds: f64,
    pub flows_per_second: f64,
    pub create: Latency,
    pub approve: Latency,
    pub certificate: Latency,
    /// Server CPU (user + system) per flow, in milliseconds.
    pub server_cpu_ms_per_flow: f64,
    /// Load generator (this process) CPU per flow, in milliseconds.
    pub client_cpu_ms_per_flow: f64,
    /// Share of the run the server's writer thread (every state change) was on a CPU;
    /// near 1.0 it is the bottleneck.
    pub writer_busy: f64,
    /// Share of the run the writer thread spent running batches (on a CPU or waiting
    /// for the database), summed over replicas: near 1.0 per replica, writes queue
    /// behind it.
    pub writer_running: f64,
    /// Operations' first reads sent ahead with their batch's BEGIN (PostgreSQL): how
    /// many answered them, were stale, went unused.
    pub reads_ahead: [f64; 3],
}

fn latency(mut micros: Vec<u32>) -> Latency {
    micros.sort_unstable();
    let at = |q: f64| -> f64 {
        if micros.is_empty() {
            return 0.0;
        }
        let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
        f64::from(micros[i]) / 1000.0
    };
    Latency {
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
    }
}

#[derive(Default)]
struct Samples {
    create: Vec<u32>,
    approve: Vec<u32>,
    certificate: Vec<u32>,
}

struct Ctx {
    /// The servers' addresses; client k talks to `addresses[k % len]`.
    addresses: Vec<String>,
    tokens: Vec<String>,
    keys: Vec<String>,
    next: AtomicUsize,
    flows: usize,
}

/// One keep-alive HTTP/1.1 connection per client, straight on hyper: the load generator
/// shares the machine with the server, so it must cost as little as it can.
struct Client {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    async fn connect(address: &str) -> anyhow::Result<Client> {
        let stream = tokio::net::TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client {
            send,
            host: address.to_owned(),
        })
    }

    /// One call; returns the body if the status is `want`, else fails the run.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Vec<u8>>,
        want: u16,
        samples: &mut Vec<u32>,
    ) -> anyhow::Result<Bytes> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let t = Instant::now();
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        samples.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if status != want {
            bail!(
                "HTTP {status} (wanted {want}): {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(body)
    }
}

/// What one or more load runs against one server measured, before summing up; runs
/// taken in turns with another server add up here (see [`Measured::add`]).
pub(crate) struct Measured {
    clients: usize,
    flows: usize,
    seconds: f64,
    server_cpu: f64,
    client_cpu: f64,
    writer_cpu: f64,
    writer_wall: f64,
    /// Reads sent ahead: used, stale, unused (PostgreSQL).
    ahead: [f64; 3],
    samples: Samples,
}

impl Measured {
    /// Another run against the same server, counted as if it had been part of this one.
    pub(crate) fn add(&mut self, other: Measured) {
        self.flows += other.flows;
        self.seconds += other.seconds;
        self.server_cpu += other.server_cpu;
        self.client_cpu += other.client_cpu;
        self.writer_cpu += other.writer_cpu;
        self.writer_wall += other.writer_wall;
        for (a, b) in self.ahead.iter_mut().zip(other.ahead) {
            *a += b;
        }
        self.samples.create.extend(other.samples.create);
        self.samples.approve.extend(other.samples.approve);
        self.samples.certificate.extend(other.samples.certificate);
    }

    /// Rates, CPU per flow and latency percentiles.
    pub(crate) fn summary(self) -> FlowRun {
        let per_flow = |cpu: f64| cpu * 1000.0 / self.flows.max(1) as f64;
        FlowRun {
            server_cpu_ms_per_flow: per_flow(self.server_cpu),
            client_cpu_ms_per_flow: per_flow(self.client_cpu),
            writer_busy: self.writer_cpu / self.seconds.max(1e-9),
            writer_running: self.writer_wall / self.seconds.max(1e-9),
            reads_ahead: self.ahead,
            clients: self.clients,
            flows: self.flows,
            seconds: self.seconds,
            flows_per_second: self.flows as f64 / self.seconds.max(1e-9),
            create: latency(self.samples.create),
            approve: latency(self.samples.approve),
            certificate: latency(self.samples.certificate),
        }
    }
}

/// Runs `flows` flows with `clients` concurrent clients; any failed call fails the run.
pub(crate) async fn run(
    fx: &Fixture,
    server: &Server,
    clients: usize,
    flows: usize,
) -> anyhow::Result<FlowRun> {
    Ok(measure(fx, &[server], clients, flows).await?.summary())
}

/// [`run`], unsummed, against one or more servers of the same state (replicas): the
/// clients are spread over them in turn; CPU is summed over them.
pub(crate) async fn measure(
    fx: &Fixture,
    servers: &[&Server],
    clients: usize,
    flows: usize,
) -> anyhow::Result<Measured> {
    let server_cpu = || servers.iter().map(|s| s.cpu_seconds()).sum::<f64>();
    let writer_cpu = || servers.iter().map(|s| s.writer_cpu_seconds()).sum::<f64>();
    let writer_wall = || servers.iter().map(|s| s.writer_busy_seconds()).sum::<f64>();
    let ahead = || {
        servers
            .iter()
            .map(|s| s.reads_ahead())
            .fold([0.0; 3], |mut sum, r| {
                sum.iter_mut().zip(r).for_each(|(s, r)| *s += r);
                sum
            })
    };
    let cpu = || (server_cpu(), cpu_seconds("/proc/self/stat"));
    let mut keys = Vec::with_capacity(REQUESTERS);
    for _ in 0..REQUESTERS {
        let k = ssh_key::PrivateKey::random(&mut rand::rng(), ssh_key::Algorithm::Ed25519)?;
        keys.push(k.public_key().to_openssh()?);
    }
    let mut addresses = Vec::with_capacity(servers.len());
    for server in servers {
        let url = server.url.as_str();
        let address = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("the bench server speaks plain HTTP on loopback, not {url}"))?;
        addresses.push(address.trim_end_matches('/').to_owned());
    }
    if addresses.is_empty() {
        bail!("no server to load");
    }
    let ctx = Arc::new(Ctx {
        addresses,
        tokens: fx.tokens.clone(),
        keys,
        next: AtomicUsize::new(0),
        flows,
    });
    let (server0, client0) = cpu();
    let (writer0, wall0, ahead0) = (writer_cpu(), writer_wall(), ahead());
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|k| tokio::spawn(client(ctx.clone(), k)))
        .collect();
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await.map_err(|e| anyhow!("client task: {e}"))??;
        all.create.extend(s.create);
        all.approve.extend(s.approve);
        all.certificate.extend(s.certificate);
    }
    let seconds = start.elapsed().as_secs_f64();
    let (server1, client1) = cpu();
    Ok(Measured {
        clients,
        flows,
        seconds,
        server_cpu: server1 - server0,
        client_cpu: client1 - client0,
        writer_cpu: writer_cpu() - writer0,
        writer_wall: writer_wall() - wall0,
        ahead: {
            let mut now = ahead();
            now.iter_mut().zip(ahead0).for_each(|(n, a)| *n -= a);
            now
        },
        samples: all,
    })
}

async fn client(ctx: Arc<Ctx>, k: usize) -> anyhow::Result<Samples> {
    let mut s = Samples::default();
    let address = &ctx.addresses[k % ctx.addresses.len()];
    let mut http = Client::connect(address).await?;
    loop {
        let i = ctx.next.fetch_add(1, Ordering::Relaxed);
        if i >= ctx.flows {
            return Ok(s);
        }
        flow(&ctx, &mut http, i, &mut s).await?;
    }
}

async fn flow(ctx: &Ctx, http: &mut Client, i: usize, s: &mut Samples) -> anyhow::Result<()> {
    let requester = &ctx.tokens[i % REQUESTERS];
    let approver = &ctx.tokens[REQUESTERS + i % (USERS - REQUESTERS)];
    let role = format!("role-{:02}", i % SIMPLE_ROLES);
    let body = json!({ "role": role, "public_key": ctx.keys[i % REQUESTERS], "reason": format!("bench flow {i}"), "ttl": "30m" });
    let body = serde_json::to_vec(&body)?;
    let created = http
        .call(
            Method::POST,
            "/v1/requests",
            requester,
            Some(body),
            201,
            &mut s.create,
        )
        .await?;
    let created: Value = serde_json::from_slice(&created)?;
    let id = created["id"].as_str().ok_or_else(|| anyhow!("no id"))?;
    let path = format!("/v1/requests/{id}/approve");
    let approved = http
        .call(Method::POST, &path, approver, None, 200, &mut s.approve)
        .await?;
    let approved: Value = serde_json::from_slice(&approved)?;
    if approved["status"] != "issued" {
        bail!("request {id} is {} after approval", approved["status"]);
    }
    let path = format!("/v1/requests/{id}/certificate");
    let cert = http
        .call(Method::GET, &path, requester, None, 200, &mut s.certificate)
        .await?;
    if !cert.starts_with(b"ssh-ed25519-cert-v01@openssh.com ") {
        bail!("not a certificate");
    }
    Ok(())
}
