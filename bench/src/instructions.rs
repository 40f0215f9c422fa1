//! `countersign-bench instructions`: server instructions per flow, a figure that does not
//! depend on the machine (issue 21 tracks it from one change to the next). Each server
//! runs under valgrind's callgrind with instrumentation off; after a warm-up it is
//! switched on (`callgrind_control -i on`) for `--flows` flows at one client, then off,
//! and the server stops: the count is what its threads executed during those flows, the
//! background (sweeps, the dispatcher) included, divided by the flows. The HTTP-only
//! server (`echo`) is measured the same way beside it.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use clap::Args;

use crate::fixture::Fixture;
use crate::load;
use crate::server::Server;

/// `instructions` arguments.
#[derive(Debug, Args)]
pub(crate) struct InstructionsArgs {
    /// Flows counted (one client).
    #[arg(long, default_value_t = 300)]
    pub flows: usize,
    /// Flows run before counting (connection set-up, caches, the first writes).
    #[arg(long, default_value_t = 30)]
    pub warmup: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Keep the callgrind files (`countersign.out`, `echo.out`) here, for
    /// `callgrind_annotate`.
    #[arg(long)]
    pub keep: Option<std::path::PathBuf>,
}

/// Runs both servers under callgrind and prints instructions per flow.
pub(crate) fn run(args: InstructionsArgs) -> anyhow::Result<ExitCode> {
    for tool in ["valgrind", "callgrind_control"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} is needed (apt-get install valgrind)");
        }
    }
    let temp = tempfile::tempdir().context("temp dir")?;
    let dir = temp.path();
    let out_dir = args.keep.clone().unwrap_or_else(|| dir.to_owned());
    std::fs::create_dir_all(&out_dir).context("the --keep folder")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let prefix = |name: &str| -> Vec<String> {
        vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "--instr-atstart=no".into(),
            format!("--callgrind-out-file={}", out_dir.join(name).display()),
        ]
    };
    eprintln!("countersign under callgrind, {} flows...", args.flows);
    let fx = Fixture::create(dir, Some(prefix("countersign.out").join(" ")))?;
    let server = fx.start_server()?;
    let countersign = count(&rt, &fx, server, &out_dir.join("countersign.out"), &args)?;
    eprintln!("HTTP-only server under callgrind, {} flows...", args.flows);
    let echo = fx.start_echo_under(&prefix("echo.out"))?;
    let http_only = count(&rt, &fx, echo, &out_dir.join("echo.out"), &args)?;
    let per = |n: u64| n as f64 / args.flows as f64;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "flows": args.flows,
                "countersign_instructions_per_flow": per(countersign),
                "http_only_instructions_per_flow": per(http_only),
            })
        );
    } else {
        println!(
            "server instructions per flow ({} flows, 1 client, callgrind):\n  \
             countersign  {:>10.0}\n  HTTP only    {:>10.0}\n  ratio        {:>10.1}x",
            args.flows,
            per(countersign),
            per(http_only),
            per(countersign) / per(http_only).max(1.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Warms `server` up, counts `args.flows` flows, stops it; the instructions counted.
fn count(
    rt: &tokio::runtime::Runtime,
    fx: &Fixture,
    mut server: Server,
    out: &Path,
    args: &InstructionsArgs,
) -> anyhow::Result<u64> {
    rt.block_on(load::run(fx, &server, 1, args.warmup.max(1)))?;
    control(&server, "--instr=on")?;
    rt.block_on(load::run(fx, &server, 1, args.flows.max(1)))?;
    control(&server, "--instr=off")?;
    server.stop()?;
    summary(out)
}

fn control(server: &Server, what: &str) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .arg(what)
        .arg(server.pid().to_string())
        .output()
        .context("callgrind_control")?;
    // It exits 0 when it found no such run, too: it says "OK." when it did.
    if !status.status.success() || !String::from_utf8_lossy(&status.stdout).contains("OK") {
        bail!(
            "callgrind_control {what} failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(())
}

/// The instructions a callgrind output file counts while instrumentation was on: the
/// largest of its `summary:` and `totals:` lines (with instrumentation switched on later,
/// callgrind writes the count in `totals:` and leaves `summary:` at 0).
fn summary(out: &Path) -> anyhow::Result<u64> {
    let text =
        std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .max()
        .with_context(|| format!("no summary line in {}", out.display()))
}
