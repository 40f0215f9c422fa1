//! `countersign man --out DIR`: one manual page per command (`countersign.1`,
//! `countersign-serve.1`, `countersign-token-create.1`, ...), rendered as roff by
//! clap_mangen from the same clap definitions the command line is parsed with. The
//! Debian package ships them (scripts/build-deb.sh generates them before packing).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory as _;

/// `countersign man` options.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Folder to write the pages into (created if missing; pages of the same name in it
    /// are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Writes every page into `args.out` and prints the path of each, one per line.
pub(super) fn run(args: &ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // `help` is a command of clap's, documented by every page's options; no page of its own.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    // Built, subcommands know their full names (`countersign-token-create`).
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &args.out, &mut written)
        .with_context(|| format!("writing manual pages into {}", args.out.display()))?;
    for path in written {
        outln!("{}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd`, then those of its visible subcommands, depth first. Every page's
/// footer names the release and its commit, and its date is the commit's.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone())
        .date(env!("COUNTERSIGN_GIT_DATE"))
        .source(format!("countersign {}", super::VERSION));
    written.push(page.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
