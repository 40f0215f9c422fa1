//! `countersign-bench run`: every phase in order, then the report.
//!
//! Phases: raw Ed25519 and in-process signing, timed in alternating slices; `ssh-keygen
//! -s`; full durable flows over loopback HTTP against a real `countersign serve` child
//! process (1 client, then C clients); a second data dir prefilled with 1,000,000
//! certificates and audit events, served beside the first and loaded in alternating
//! turns with it; `audit verify` speed and the time to tell one certificate's story
//! (`audit --serial N`) on the prefilled database; the servers' peak RSS. The C-client
//! flows are run in alternating turns with the same flows against a server that only
//! answers HTTP (`echo.rs`): the ceiling HTTP and the load generator leave on this
//! machine. It ends by checking both audit chains and that certificates and
//! `certificate.issued` events match one to one, and fails loudly if not.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::report::Report;
use crate::server::Server;
use crate::{baseline, fixture, load, postgres};

/// `countersign-bench run` options (those of the former `countersign bench`).
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Flows per multi-client run.
    #[arg(long, default_value_t = 20_000)]
    pub flows: usize,
    /// Concurrent clients in the multi-client runs.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Flows in the single-client run.
    #[arg(long, default_value_t = 2_000)]
    pub single_flows: usize,
    /// Certificates (with their requests and audit events) prefilled for the scale run;
    /// 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub scale_rows: usize,
    /// Keep the data directory here instead of a temp dir (for inspection).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Time each baseline for this long (seconds); the suite's smoke test uses a fraction.
    #[arg(long, default_value_t = 2.0)]
    pub baseline_seconds: f64,
    /// Run the server under this command, for profiling (e.g. "perf record -g -o server.perf").
    #[arg(long)]
    pub server_prefix: Option<String>,
    /// Also load `--replicas` servers sharing a PostgreSQL database, in turns with the
    /// SQLite server (`scripts/bench.sh --backend postgres` starts a cluster for it).
    #[arg(long, value_enum, default_value_t = BackendArg::Sqlite)]
    pub backend: BackendArg,
    /// PostgreSQL replicas (`countersign serve` processes on the one database).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// With `--backend postgres`: the database, `postgres://USER@127.0.0.1:PORT/DB`.
    #[arg(long, env = "COUNTERSIGN_BENCH_PG_URL")]
    pub pg_url: Option<String>,
    /// With `--backend postgres`: the file holding the role's password (mode 0600).
    #[arg(long, env = "COUNTERSIGN_BENCH_PG_PASSWORD_FILE")]
    pub pg_password_file: Option<PathBuf>,
}

/// `--backend`: what the C-client flows run on besides SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BackendArg {
    /// SQLite only.
    Sqlite,
    /// SQLite, and PostgreSQL with `--replicas` servers, in turns.
    Postgres,
}

/// Turns each server gets when two are compared.
const TURNS: usize = 4;

/// Runs every phase and prints the report.
pub(crate) fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let temp = tempfile::tempdir().context("temp dir")?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let mut report = Report {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        ..Report::default()
    };
    eprintln!("baselines...");
    let budget = std::time::Duration::from_secs_f64(args.baseline_seconds.clamp(0.05, 60.0));
    let (raw, in_process) = baseline::signing_side_by_side(&dir, budget)?;
    report.raw_ed25519 = Some(raw);
    report.in_process = Some(in_process);
    report.ssh_keygen = baseline::ssh_keygen(&dir, budget);
    let fx = fixture::Fixture::create(&dir, args.server_prefix.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut server = fx.start_server()?;
    // The scale comparison's prefilled data dir, made while the first server holds its
    // port so that the two can never be given the same one.
    let big = if args.scale_rows > 0 {
        let big_dir = dir.join("prefilled");
        std::fs::create_dir_all(&big_dir).context("prefilled data dir")?;
        Some(fixture::Fixture::create(
            &big_dir,
            args.server_prefix.clone(),
        )?)
    } else {
        None
    };
    eprintln!("flows, 1 client...");
    report.single = Some(rt.block_on(load::run(&fx, &server, 1, args.single_flows))?);
    // The C-client flows and the same flows against a server that only answers HTTP,
    // loaded in turns: their ratio is the share of the HTTP ceiling countersign reaches.
    eprintln!(
        "flows, {} clients, countersign and HTTP only, {TURNS} turns each...",
        args.clients
    );
    let mut echo = fx.start_echo()?;
    let (multi, http_only) = in_turns(
        &rt,
        (&[&server], &fx),
        (&[&echo], &fx),
        args.clients,
        args.flows,
    )?;
    report.multi = Some(multi);
    report.http_only = Some(http_only);
    echo.stop()?;
    if args.backend == BackendArg::Postgres {
        postgres_phase(&args, &dir, &rt, (&server, &fx), &mut report)?;
    }
    report.rss_mb = server.peak_rss_mb();
    report.rss_anon_mb = server.anon_rss_mb();
    server.stop()?;
    let mut check = None;
    if let Some(big) = &big {
        // The prefilled data dir is served beside the first and loaded in turns with it.
        eprintln!("prefilling {} certificates...", args.scale_rows);
        report.prefill = Some(big.prefill(args.scale_rows)?);
        let mut small_server = fx.start_server()?;
        let mut big_server = big.start_server()?;
        eprintln!(
            "flows, {} clients, {} rows vs the small database, {TURNS} turns each...",
            args.clients, args.scale_rows
        );
        let (small, large) = in_turns(
            &rt,
            (&[&small_server], &fx),
            (&[&big_server], big),
            args.clients,
            args.flows,
        )?;
        report.scale_small = Some(small);
        report.scaled = Some(large);
        report.rss_mb = report
            .rss_mb
            .max(small_server.peak_rss_mb())
            .max(big_server.peak_rss_mb());
        report.rss_anon_mb = report
            .rss_anon_mb
            .max(small_server.anon_rss_mb())
            .max(big_server.anon_rss_mb());
        small_server.stop()?;
        big_server.stop()?;
        eprintln!("audit verify...");
        report.verify = Some(big.verify_speed()?);
        report.serial_lookup = Some(big.serial_lookups(200)?);
        check = Some(big.check()?);
    } else {
        eprintln!("audit verify...");
        report.verify = Some(fx.verify_speed()?);
        report.serial_lookup = Some(fx.serial_lookups(200)?);
    }
    let small_check = fx.check()?;
    report.check = Some(match check {
        Some(big) => small_check.and(big),
        None => small_check,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print();
    }
    if let Some(check) = &report.check
        && !check.ok
    {
        bail!("correctness check failed: {}", check.message);
    }
    Ok(ExitCode::SUCCESS)
}

/// The C-client flows on SQLite and on PostgreSQL (`--replicas` servers), in turns.
fn postgres_phase(
    args: &RunArgs,
    dir: &std::path::Path,
    rt: &tokio::runtime::Runtime,
    (server, fx): (&Server, &fixture::Fixture),
    report: &mut Report,
) -> anyhow::Result<()> {
    let (Some(url), Some(password_file)) = (&args.pg_url, &args.pg_password_file) else {
        bail!(
            "--backend postgres needs --pg-url and --pg-password-file (scripts/bench.sh sets them)"
        );
    };
    let pg = postgres::PgTarget {
        url: url.clone(),
        password_file: password_file.clone(),
    };
    let replicas = args.replicas.max(1);
    let set = postgres::Replicas::create(
        &dir.join("postgres"),
        replicas,
        &pg,
        args.server_prefix.clone(),
    )?;
    let mut servers = set.start()?;
    eprintln!(
        "flows, {} clients, SQLite vs PostgreSQL ({replicas} replicas), {TURNS} turns each...",
        args.clients
    );
    let statements_before = postgres::statements_run(&pg)?;
    let sampler = postgres::WaitSampler::start(&pg)?;
    // PostgreSQL's own CPU over all the turns: its processes are idle in SQLite's but
    // for the sampler's backend and background work, which this counts too.
    let db = postgres::DbProcesses::of_backend(sampler.backend)?;
    let db_before = db.cpu();
    let refs: Vec<&Server> = servers.iter().collect();
    let turns = in_turns(
        rt,
        (&[server], fx),
        (&refs, &set.fixtures[0]),
        args.clients,
        args.flows,
    );
    let db_cpu = postgres::cpu_between(&db_before, &db.cpu());
    let waits = sampler.finish();
    let (lite, post) = turns?;
    report.pg_cpu_ms_per_flow = Some(db_cpu * 1000.0 / post.flows.max(1) as f64);
    // Every statement the replicas ran in the turns (flows only: they run nothing else
    // meanwhile but the commit listener and the clock check every 30 s).
    if let (Some(before), Some(after)) = (statements_before, postgres::statements_run(&pg)?) {
        report.pg_statements_per_flow =
            Some(after.saturating_sub(before) as f64 / post.flows.max(1) as f64);
    }
    for s in &mut servers {
        report.rss_mb = report.rss_mb.max(s.peak_rss_mb());
        report.rss_anon_mb = report.rss_anon_mb.max(s.anon_rss_mb());
        s.stop()?;
    }
    report.pg_replicas = replicas;
    report.pg_sqlite = Some(lite);
    report.postgres = Some(post);
    report.pg_waits = Some(waits);
    report.pg_audit_events = Some(set.verify()?);
    Ok(())
}

/// Loads two servers in alternating turns, `flows` flows each in all: ABBA..., so that
/// whichever goes first alternates and a steady drift in the machine's speed (a shared
/// VM's) falls on both alike; their ratio then compares the servers, not two moments.
pub(crate) fn in_turns(
    rt: &tokio::runtime::Runtime,
    a: (&[&Server], &fixture::Fixture),
    b: (&[&Server], &fixture::Fixture),
    clients: usize,
    flows: usize,
) -> anyhow::Result<(load::FlowRun, load::FlowRun)> {
    let per_turn = flows.div_ceil(TURNS).max(1);
    let (mut sum_a, mut sum_b) = (None::<load::Measured>, None::<load::Measured>);
    for turn in 0..TURNS {
        let mut order = [(a, &mut sum_a), (b, &mut sum_b)];
        if turn % 2 == 1 {
            order.reverse();
        }
        for ((servers, fixture), sum) in order {
            let m = rt.block_on(load::measure(fixture, servers, clients, per_turn))?;
            match sum {
                Some(sum) => sum.add(m),
                None => *sum = Some(m),
            }
        }
    }
    match (sum_a, sum_b) {
        (Some(a), Some(b)) => Ok((a.summary(), b.summary())),
        _ => bail!("no turns were run"),
    }
}
