//! `countersign-bench`: numbers that show how close issuance is to what the machine
//! allows, measured in one run beside the baselines (`run`), and the HTTP-only server
//! those numbers are compared with (`echo`, started by `run`). docs/benchmark.md says
//! what each number means; scripts/bench.sh builds in release mode and runs it.
//!
//! Layout: `run.rs` the phases in order; `baseline.rs` raw Ed25519, `ssh-keygen -s` and
//! countersign's signing door; `fixture.rs` the generated policy, data dirs, tokens and
//! the prefill; `server.rs` the server child processes and their CPU and memory;
//! `load.rs` the HTTP load generator; `checks.rs` `audit verify` speed, serial lookups
//! and the end-of-run check; `echo.rs` the HTTP-only server; `instructions.rs` server
//! instructions per flow under callgrind; `postgres.rs` the
//! PostgreSQL replicas (`--backend postgres`); `report.rs` the table and the JSON.

mod baseline;
mod checks;
mod echo;
mod fixture;
mod instructions;
mod load;
mod postgres;
mod report;
mod run;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc, as in the `countersign` binary: the load generator and the HTTP-only server
/// allocate on several threads at once, as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line of countersign-bench.
#[derive(Debug, Parser)]
#[command(
    name = "countersign-bench",
    version,
    about = "Measure countersign's issuance against baselines (scripts/bench.sh: a release build)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every phase against a real `countersign serve` and print the report.
    Run(run::RunArgs),
    /// Serve the HTTP-only baseline (started by `run`); prints the address it bound.
    Echo(echo::EchoArgs),
    /// Count server instructions per flow under valgrind's callgrind, beside the
    /// HTTP-only server (a figure that does not depend on the machine).
    Instructions(instructions::InstructionsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Echo(args) => echo::run(&args),
        Command::Instructions(args) => instructions::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("countersign-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
