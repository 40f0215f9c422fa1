//! The `countersign` binary: parse the command line, set up logging, run, and turn an
//! error into a one-line message and a non-zero exit status.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: the server allocates and frees small buffers on
/// several threads at once (hyper, JSON, SQLite), where glibc's allocator cost the server
/// a noticeable share of its CPU under load (docs/benchmark.md, "Lab notes"). With the
/// crate's `override` feature it also replaces `malloc` for the C code linked in, so
/// SQLite's allocations (every statement's) no longer go through glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = countersign::cli::Cli::parse();
    // `serve` sets up its log once it has read `[server] log_format`.
    if !matches!(cli.command, countersign::cli::Command::Serve(_)) {
        countersign::logging::init(countersign::config::LogFormat::Text, "warn");
    }
    // What is still buffered goes out now, so that a failed write is reported too.
    let result = countersign::cli::run(cli).and_then(|code| {
        std::io::Write::flush(&mut std::io::stdout()).map_err(countersign::cli::stdout_error)?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // The reader went away (`| head`): stop quietly with the status a SIGPIPE gives.
        Err(e) if countersign::cli::is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("countersign: {e:#}");
            ExitCode::FAILURE
        }
    }
}
