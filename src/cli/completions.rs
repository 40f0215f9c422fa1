//! `countersign completions SHELL`: the shell's completion script on stdout, generated
//! (clap_complete) from the same clap definitions the command line is parsed with, so it
//! never names a command or an option that does not exist.

use std::io::Write as _;
use std::process::ExitCode;

use clap::CommandFactory as _;

/// `countersign completions` options.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// The shells completions are written (and tested) for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompletionShell {
    /// bash: install as /usr/share/bash-completion/completions/countersign.
    Bash,
    /// zsh: install as `_countersign` in a folder of `$fpath`.
    Zsh,
    /// fish: install as ~/.config/fish/completions/countersign.fish.
    Fish,
}

/// Writes the completion script for `args.shell` to stdout.
pub(super) fn run(args: &CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell = match args.shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    // Generated into memory first: clap_complete panics on a failed write, and a full
    // disk or a closed pipe is an error to report like any other.
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut super::Cli::command(),
        "countersign",
        &mut script,
    );
    std::io::stdout()
        .lock()
        .write_all(&script)
        .map_err(super::stdout_error)?;
    Ok(ExitCode::SUCCESS)
}
