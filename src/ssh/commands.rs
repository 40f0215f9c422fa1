//! The command line an SSH client sends: bounded, split like a shell would (quotes,
//! backslashes), never given to one, then parsed by clap.
//!
//! `ssh HOST request prod-db --reason INC-4211 replica lag` reaches the server as one
//! string, the local shell's quotes already gone; so the words after `--reason` (and
//! `--comment`) up to the next option are joined with single spaces. Text quoted for the
//! remote side (`--reason "'a  b'"`) keeps its spacing.

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

/// Longest command line accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;

const AFTER_HELP: &str = "\
Your identity is the SSH key you log in with: it must be registered to you (your
user's ssh_keys in the config, or `countersign keys add`). Log in as `ca` (or as your
own user name). Certificates are issued for that same key.

`request` prints progress on stderr and only the certificate on stdout. Write it to a
temp file and rename it on success, so that a denied or dropped request never empties
the certificate you use (a shell's `>` empties its file first):
  ssh -p 2222 ca@HOST request prod-db --ttl 45m --reason INC-4211 replica lag > ~/.ssh/c.tmp \\
    && mv ~/.ssh/c.tmp ~/.ssh/id_ed25519-cert.pub

Words after --reason and --comment, up to the next option, are joined with spaces.
Arguments are split as a shell would (quotes, backslashes) but never run by one.

Exit status: 0 done; 1 refused, failed, or the request ended without a certificate
(stderr says why: `countersign: CODE: message`); 2 bad command line.";

/// Every command of the SSH front door.
#[derive(Debug, Parser)]
#[command(
    name = "countersign",
    bin_name = "ssh ca@HOST",
    about = "countersign: request and approve SSH access with nothing but ssh",
    after_help = AFTER_HELP,
    disable_version_flag = true,
    color = clap::ColorChoice::Never
)]
pub(super) struct CommandLine {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub(super) enum Command {
    /// Ask for a role for the key you logged in with; waits for the decision and prints
    /// the certificate on stdout
    Request(RequestArgs),
    /// Show one request
    Status(IdArg),
    /// List the requests you can see (your own, those you may approve), newest first
    List(ListArgs),
    /// Approve someone else's request
    Approve {
        /// Request id (r-...)
        id: String,
        /// Note recorded with the approval
        #[arg(long, num_args = 1.., value_name = "TEXT")]
        comment: Vec<String>,
    },
    /// Deny a request you could approve
    Deny {
        /// Request id (r-...)
        id: String,
        /// Why (the requester sees it)
        #[arg(long, required = true, num_args = 1.., value_name = "TEXT")]
        reason: Vec<String>,
    },
    /// Cancel your own pending request
    Cancel(IdArg),
    /// Print the certificate of your issued request
    Cert(IdArg),
    /// Show who your key belongs to and what you may request and approve
    Whoami,
    /// Break the glass: take a role at once, without approval, for the key you logged in
    /// with (every notification sink is told; it is reviewed afterwards); prints the
    /// certificate on stdout
    Breakglass(BreakglassArgs),
    /// Review a break-glass use: --justified, or --unjustified (revokes it at once)
    #[command(group = verdict_group())]
    Review {
        /// Request id (r-...)
        id: String,
        /// The use was justified
        #[arg(long)]
        justified: bool,
        /// It was not: its certificate is revoked at once if still valid
        #[arg(long)]
        unjustified: bool,
        /// Why (recorded with the verdict)
        #[arg(long, required = true, num_args = 1.., value_name = "TEXT")]
        comment: Vec<String>,
    },
}

/// `--justified` or `--unjustified`, exactly one.
pub(super) fn verdict_group() -> clap::ArgGroup {
    clap::ArgGroup::new("verdict")
        .required(true)
        .args(["justified", "unjustified"])
}

/// `breakglass` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(super) struct BreakglassArgs {
    /// The role to take at once
    pub role: String,
    /// Why (every notification sink, the reviewers and the audit log see it)
    #[arg(long, required = true, num_args = 1.., value_name = "TEXT")]
    pub reason: Vec<String>,
    /// Certificate lifetime, e.g. 45m (default: the role's default_ttl; cut to the
    /// break-glass max_ttl, never refused)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
}

/// `request` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(super) struct RequestArgs {
    /// The role to ask for
    pub role: String,
    /// Why (approvers and the audit log see it)
    #[arg(long, required = true, num_args = 1.., value_name = "TEXT")]
    pub reason: Vec<String>,
    /// Certificate lifetime, e.g. 45m (default: the role's default_ttl)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Print the request id and return at once instead of waiting
    #[arg(long)]
    pub no_wait: bool,
}

/// `list` arguments: a filter and one page.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(super) struct ListArgs {
    /// Only this status (pending, issued, denied, cancelled, expired, refused,
    /// pending_review)
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (1 to 10000, the default)
    #[arg(
        long,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::service::LIST_LIMIT))
    )]
    pub limit: Option<u32>,
    /// The page after this request (the id the previous page named)
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
}

/// A single request id argument.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub(super) struct IdArg {
    /// Request id (r-...)
    pub id: String,
}

/// What a command line turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A command to run.
    Run(Command),
    /// Help was asked for: print it on stdout, exit 0.
    Help(String),
    /// A bad command line: print this on stderr, exit 2.
    Usage(String),
}

/// Parses the bytes of an exec request.
pub(super) fn parse(raw: &[u8]) -> Parsed {
    if raw.len() > MAX_COMMAND_BYTES {
        return usage(&format!(
            "the command is {} bytes long, at most {MAX_COMMAND_BYTES}",
            raw.len()
        ));
    }
    let Ok(line) = std::str::from_utf8(raw) else {
        return usage("the command is not UTF-8");
    };
    let words = match split(line) {
        Ok(w) => w,
        Err(message) => return usage(&message),
    };
    if words.is_empty() {
        return Parsed::Help(help());
    }
    let argv = std::iter::once("countersign".to_owned()).chain(words);
    match CommandLine::try_parse_from(argv) {
        Ok(cl) => Parsed::Run(cl.command),
        Err(e) if e.kind() == ErrorKind::DisplayHelp => Parsed::Help(e.to_string()),
        Err(e) => Parsed::Usage(e.to_string()),
    }
}

/// The full help text, also shown for a shell request.
pub(super) fn help() -> String {
    <CommandLine as clap::CommandFactory>::command()
        .render_help()
        .to_string()
}

/// Shell-like words; refuses what a shell would silently drop (a `#` comment).
fn split(line: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(line)
        .map_err(|_| "a quote is not closed (arguments are split like a shell does)".to_owned())?;
    let kept: usize = words.iter().map(|w| w.matches('#').count()).sum();
    if kept < line.matches('#').count() {
        return Err(
            "a word starting with # would be a comment: quote it for this side too, as \
                    ssh drops your shell's quotes (ssh ... request ROLE --reason \"'#4211'\"), \
                    or write it without the # (INC-4211)"
                .into(),
        );
    }
    Ok(words)
}

/// Free-text words as one text; `None` when there are none.
pub(super) fn joined(words: &[String]) -> Option<String> {
    (!words.is_empty()).then(|| words.join(" "))
}

fn usage(message: &str) -> Parsed {
    Parsed::Usage(format!(
        "error: {message}\n\nFor more information, try 'help'.\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(line: &str) -> Command {
        match parse(line.as_bytes()) {
            Parsed::Run(c) => c,
            other => panic!("{line:?} did not parse: {other:?}"),
        }
    }

    fn request(line: &str) -> RequestArgs {
        match run(line) {
            Command::Request(r) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn the_words_of_a_reason_are_joined_as_ssh_sent_them() {
        let r = request("request prod-db --ttl 45m --reason INC-4211 replica lag");
        assert_eq!(r.role, "prod-db");
        assert_eq!(r.ttl.as_deref(), Some("45m"));
        assert_eq!(joined(&r.reason).as_deref(), Some("INC-4211 replica lag"));
        assert!(!r.no_wait);
        let r = request("request prod-db --reason 'a  b' --no-wait");
        assert_eq!(joined(&r.reason).as_deref(), Some("a  b"));
        assert!(r.no_wait);
    }

    #[test]
    fn shell_syntax_in_arguments_stays_literal_text() {
        let r = request("request prod-db --reason x; touch /tmp/pwned");
        assert_eq!(joined(&r.reason).as_deref(), Some("x; touch /tmp/pwned"));
        let r = request("request prod-db --reason $(id) `id` | cat && rm / > /etc/passwd");
        assert_eq!(
            joined(&r.reason).as_deref(),
            Some("$(id) `id` | cat && rm / > /etc/passwd")
        );
        // A word that looks like an option is one, and an unknown one is an error.
        assert!(matches!(
            parse(b"request prod-db --reason x && rm -rf /"),
            Parsed::Usage(m) if m.contains("'-r'")
        ));
    }

    #[test]
    fn a_second_command_after_a_semicolon_is_a_usage_error() {
        assert!(matches!(
            parse(b"whoami; touch /tmp/pwned"),
            Parsed::Usage(_)
        ));
        assert!(matches!(parse(b"whoami && id"), Parsed::Usage(_)));
        assert!(matches!(parse(b"sh -c id"), Parsed::Usage(_)));
    }

    #[test]
    fn bad_lines_are_usage_errors_that_say_why() {
        let cases: [(&[u8], &str); 7] = [
            (b"request prod-db --reason 'open", "quote"),
            (
                b"request prod-db --reason fix #4211",
                "--reason \"'#4211'\"",
            ),
            (b"\xff\xfe", "UTF-8"),
            (b"request prod-db", "--reason"),
            (b"frobnicate", "frobnicate"),
            (b"list --limit 0", "1..=10000"),
            (b"list --limit 10001", "1..=10000"),
        ];
        for (line, needle) in cases {
            match parse(line) {
                Parsed::Usage(m) => assert!(m.contains(needle), "{m}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
        let long = format!("request prod-db --reason {}", "x".repeat(MAX_COMMAND_BYTES));
        assert!(matches!(parse(long.as_bytes()), Parsed::Usage(m) if m.contains("4096")));
    }

    #[test]
    fn a_quoted_hash_is_text() {
        let r = request("request prod-db --reason 'fix #4211' and\\#1");
        assert_eq!(joined(&r.reason).as_deref(), Some("fix #4211 and#1"));
    }

    #[test]
    fn help_is_printed_for_help_an_empty_line_and_help_flags() {
        for line in ["help", "", "  ", "--help", "help request", "request --help"] {
            match parse(line.as_bytes()) {
                Parsed::Help(h) => assert!(h.contains("Usage: ssh ca@HOST"), "{line:?}: {h}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
        assert!(help().contains("request"));
        assert!(help().contains("Exit status"));
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(
            run("status r-abcdefghijkl"),
            Command::Status(IdArg {
                id: "r-abcdefghijkl".into()
            })
        );
        assert_eq!(
            run("list --status pending"),
            Command::List(ListArgs {
                status: Some("pending".into()),
                limit: None,
                after: None,
            })
        );
        assert_eq!(
            run("list --limit 2 --after r-x"),
            Command::List(ListArgs {
                status: None,
                limit: Some(2),
                after: Some("r-x".into()),
            })
        );
        assert_eq!(
            run("approve r-x --comment looks fine"),
            Command::Approve {
                id: "r-x".into(),
                comment: vec!["looks".into(), "fine".into()]
            }
        );
        assert_eq!(
            run("approve r-x"),
            Command::Approve {
                id: "r-x".into(),
                comment: vec![]
            }
        );
        assert!(matches!(run("deny r-x --reason no"), Command::Deny { .. }));
        assert!(matches!(run("cancel r-x"), Command::Cancel(_)));
        assert!(matches!(run("cert r-x"), Command::Cert(_)));
        assert_eq!(run("whoami"), Command::Whoami);
        assert_eq!(
            run("breakglass prod-db --ttl 2h --reason INC-4211 db down"),
            Command::Breakglass(BreakglassArgs {
                role: "prod-db".into(),
                reason: vec!["INC-4211".into(), "db".into(), "down".into()],
                ttl: Some("2h".into()),
            })
        );
        assert!(matches!(
            run("review r-x --unjustified --comment no incident"),
            Command::Review {
                unjustified: true,
                justified: false,
                ..
            }
        ));
        for bad in [
            "breakglass prod-db",
            "review r-x --comment c",
            "review r-x --justified",
        ] {
            assert!(matches!(parse(bad.as_bytes()), Parsed::Usage(_)), "{bad}");
        }
        assert!(matches!(
            parse(b"review r-x --justified --unjustified --comment c"),
            Parsed::Usage(_)
        ));
    }
}
