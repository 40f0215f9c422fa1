//! `countersign host enroll`: a server's first host certificate, for a join token.
//!
//! The join token is a credential (single use, for exactly the host's names): it is best
//! read from a file only root reads (`--token-file`) or from `COUNTERSIGN_HOST_TOKEN`,
//! since `ps` shows every process's argv; `--token` is there for a quick try. The folder
//! of the certificate file is checked to be writable before the token is spent.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde_json::json;
use ssh_key::Certificate;

use super::{DEFAULT_HOST_KEY, HostCert, install};
use crate::cli::client::Client;
use crate::cli::keys::public_file;
use crate::cli::request::{cert_path, read_public_key};

/// The environment variable `host enroll` reads the join token from.
const TOKEN_ENV: &str = "COUNTERSIGN_HOST_TOKEN";

/// `host enroll` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "The join token comes from --token-file or --token, else from \
    COUNTERSIGN_HOST_TOKEN. Prefer a file or the environment: any user on the host sees \
    argv with `ps`."
)]
pub struct EnrollArgs {
    /// The join token (csh_...) from `countersign host token create`; visible in `ps`:
    /// prefer --token-file or COUNTERSIGN_HOST_TOKEN.
    #[arg(long, conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the join token (owned by you or root, not readable by others).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The host's public key (a path without `.pub` names the file beside it).
    #[arg(long, default_value = DEFAULT_HOST_KEY)]
    pub key: PathBuf,
    /// The certificate's lifetime (at most the server's [host_ca] max_ttl) [default: its
    /// cert_ttl, 7d].
    #[arg(long)]
    pub ttl: Option<String>,
    /// Where to write the certificate [default: the key's path with -cert.pub, e.g.
    /// /etc/ssh/ssh_host_ed25519_key-cert.pub].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `host enroll`.
pub(super) fn run(url: &str, args: &EnrollArgs) -> anyhow::Result<ExitCode> {
    let token = join_token(args)?;
    let public = public_file(&args.key);
    let line = read_public_key(&public)?;
    let key = ssh_key::PublicKey::from_openssh(&line)
        .map_err(|e| anyhow!("{}: {e}; nothing was sent", public.display()))?;
    let out = args.out.clone().unwrap_or_else(|| cert_path(&public));
    check_replaceable(&out, &public)?;
    check_writable(&out)?;
    let client = Client::anonymous(url)?;
    let body = json!({ "token": token, "public_key": line, "ttl": args.ttl });
    let cert: HostCert = client.post("/v1/hosts/enroll", &body).with_context(|| {
        format!(
            "the server did not enroll this host; {} was left as it is",
            out.display()
        )
    })?;
    install(&out, &key, &cert)?;
    let shown = std::fs::canonicalize(&out).unwrap_or(out);
    eprintln!(
        "enrolled: host certificate serial {} for {}, valid until {}; wrote {}",
        cert.serial,
        cert.principals.join(", "),
        cert.valid_before,
        shown.display()
    );
    outln!("HostCertificate {}", shown.display())?;
    eprintln!(
        "Add the line above to sshd_config (next to the HostKey line of this key; in \
         /etc/ssh/sshd_config.d/ or before any Match block) and reload sshd (`sshd -t && \
         systemctl reload ssh`). Renew with countersign-host-renew.timer, which reloads sshd \
         after each renewal: OpenSSH 9.8 and later read host certificates only when sshd \
         starts or reloads."
    );
    Ok(ExitCode::SUCCESS)
}

/// The join token: `--token-file`, `--token` or `COUNTERSIGN_HOST_TOKEN`, trimmed.
fn join_token(args: &EnrollArgs) -> anyhow::Result<String> {
    let token = if let Some(path) = &args.token_file {
        let bytes = crate::ca::read_secret_file(path).map_err(|e| anyhow!("--token-file {e}"))?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| anyhow!("--token-file {}: not text", path.display()))?
    } else if let Some(t) = &args.token {
        t.clone()
    } else if let Some(t) = std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
    {
        t
    } else {
        bail!(
            "no join token: pass --token-file FILE (or set {TOKEN_ENV}); an admin makes one \
             with `countersign host token create --principals ...`"
        );
    };
    let token = token.trim().to_owned();
    if token.is_empty() || token.contains(char::is_whitespace) {
        bail!("the join token must be one word (csh_...), as `host token create` printed it");
    }
    Ok(token)
}

/// Refuses an `out` that would destroy something: the host key itself (public or
/// private), or an existing file that is not an OpenSSH certificate (a typo in `--out`
/// must not replace `/etc/ssh/sshd_config`). An earlier certificate is replaced.
fn check_replaceable(out: &Path, public: &Path) -> anyhow::Result<()> {
    let same = |a: &Path, b: &Path| {
        a == b
            || std::fs::canonicalize(a)
                .ok()
                .is_some_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
    };
    if same(out, public) || same(out, &public.with_extension("")) {
        bail!(
            "--out {} is the host key itself: the certificate goes beside it ({}); the join \
             token was not used",
            out.display(),
            cert_path(public).display()
        );
    }
    // Read only a small regular file: never block on a FIFO or read a device whole.
    let small_file = std::fs::metadata(out).is_ok_and(|m| m.is_file() && m.len() <= 64 * 1024);
    let text = small_file
        .then(|| std::fs::read_to_string(out).ok())
        .flatten();
    match text {
        Some(text) if Certificate::from_openssh(text.trim()).is_ok() => Ok(()),
        _ if std::fs::symlink_metadata(out).is_err() => Ok(()),
        _ => bail!(
            "{} exists and is not an OpenSSH certificate: not replacing it (remove it, or pick \
             another --out); the join token was not used",
            out.display()
        ),
    }
}

/// Fails unless a file can be made in `out`'s folder: a join token spent on a certificate
/// that cannot be written would need a new token.
fn check_writable(out: &Path) -> anyhow::Result<()> {
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".countersign-check.")
        .tempfile_in(dir)
        .map(drop)
        .with_context(|| {
            format!(
                "cannot write in {} (run as root for /etc/ssh, or pass --out); the join token \
                 was not used",
                dir.display()
            )
        })
}
