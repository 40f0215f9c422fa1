//! `countersign keys add|list|remove`: SSH keys registered by their owners.
//!
//! `add` proves possession: it asks the server for a challenge, has `ssh-keygen -Y sign
//! -n countersign-key` sign it with the key's private half (the file next to the `.pub`,
//! or the ssh-agent when there is no such file), and sends the signature back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, anyhow, bail};
use clap::Subcommand;
use serde_json::{Value, json};

use super::client::Client;
use super::request::{default_key, read_public_key};
use super::show::urlencode;
use crate::service::KEY_NAMESPACE;

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Register a public key as yours, after proving you hold its private half.
    Add {
        /// The public key (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub,
        /// id_rsa.pub, id_ed25519_sk.pub or id_ecdsa_sk.pub).
        /// The private key is the same path without `.pub`; without that file,
        /// `ssh-keygen` asks the ssh-agent.
        path: Option<PathBuf>,
    },
    /// Your keys (from the config and registered); admins: anyone's.
    List {
        /// This user's keys (admins).
        #[arg(long, conflicts_with = "all")]
        user: Option<String>,
        /// Every person's keys (admins).
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Take back a registered key: yours, or anyone's for an admin.
    Remove {
        /// The key's fingerprint (SHA256:...), or its public key file.
        key: String,
    },
}

/// Runs a `keys` subcommand against the server.
pub(super) fn run(url: &str, cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let client = Client::from_env(url)?;
    match cmd {
        KeysCommand::Add { path } => add(url, path),
        KeysCommand::List { user, all, json } => list(&client, user.as_deref(), all, json),
        KeysCommand::Remove { key } => remove(&client, &key),
    }
}

/// The public key file `path` names: itself when it ends in `.pub`, else `path.pub`.
pub(super) fn public_file(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "pub") {
        return path.to_owned();
    }
    let mut with = path.as_os_str().to_owned();
    with.push(".pub");
    PathBuf::from(with)
}

fn add(url: &str, path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let public = match path {
        Some(p) => public_file(&p),
        None => default_key("name the public key file: countersign keys add PATH.pub")?,
    };
    let line = read_public_key(&public)?;
    let body = json!({ "public_key": line });
    // A registered key approves at the SSH front door, so registering needs a recent
    // sign-in at the identity provider, as approving does (with a session).
    let v: Value =
        super::login::post_stepping_up(url, "/v1/keys/challenge", &body, "Registering a key")?;
    let client = Client::from_env(url)?;
    let challenge = v["challenge"]
        .as_str()
        .ok_or_else(|| anyhow!("the server sent no challenge"))?;
    let signature = sign(&public, challenge)?;
    let v: Value = client.post(
        "/v1/keys",
        &json!({ "public_key": line, "challenge": challenge, "signature": signature }),
    )?;
    let fingerprint = v["key"]["fingerprint"].as_str().unwrap_or_default();
    let user = v["key"]["user"].as_str().unwrap_or_default();
    if v["registered"].as_bool() == Some(true) {
        outln!("registered {fingerprint} for {user}")?;
    } else {
        outln!("{fingerprint} was already registered to {user}; nothing changed")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs `challenge` with the private half of the key at `public` (or the agent's) as
/// an armored SSH signature in [`KEY_NAMESPACE`].
fn sign(public: &Path, challenge: &str) -> anyhow::Result<String> {
    let private = public.with_extension("");
    let key = if private.is_file() { &private } else { public };
    if key == public && std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty()) {
        bail!(
            "there is no private key at {} and no ssh-agent (SSH_AUTH_SOCK is not set) to sign \
             with; nothing was registered",
            private.display()
        );
    }
    if key == public {
        eprintln!(
            "signing the server's challenge with the ssh-agent's key for {}",
            public.display()
        );
    } else {
        eprintln!(
            "signing the server's challenge with {} (ssh-keygen asks for its passphrase if it \
             has one)",
            key.display()
        );
    }
    let mut child = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", KEY_NAMESPACE, "-f"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ssh-keygen (is OpenSSH installed?)")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("ssh-keygen has no stdin"))?
        .write_all(challenge.as_bytes())
        .context("writing the challenge to ssh-keygen")?;
    let out = child.wait_with_output().context("running ssh-keygen")?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let agent = if key == public {
            format!(
                " (there is no private key at {}, so the ssh-agent was asked: is the key \
                 added to it?)",
                private.display()
            )
        } else {
            String::new()
        };
        bail!(
            "ssh-keygen could not sign with {}{agent}: {}; nothing was registered",
            key.display(),
            why.trim()
        );
    }
    String::from_utf8(out.stdout).context("ssh-keygen wrote a signature that is not text")
}

fn list(client: &Client, user: Option<&str>, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let path = match (user, all) {
        (Some(u), _) => format!("/v1/keys?user={}", urlencode(u)),
        (None, true) => "/v1/keys?all=true".to_owned(),
        (None, false) => "/v1/keys".to_owned(),
    };
    let v: Value = client.get(&path)?;
    let keys = v["keys"].as_array().cloned().unwrap_or_default();
    if json {
        outln!("{}", serde_json::to_string_pretty(&keys)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let field = |k: &Value, f: &str| k[f].as_str().unwrap_or("").to_owned();
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let line = field(k, "public_key");
            let mut parts = line.splitn(3, ' ');
            let kind = parts.next().unwrap_or_default().to_owned();
            let comment = parts.nth(1).unwrap_or_default().to_owned();
            vec![
                field(k, "user"),
                field(k, "fingerprint"),
                kind,
                comment,
                field(k, "source"),
                field(k, "registered_at"),
            ]
        })
        .collect();
    out!(
        "{}",
        crate::render::render_table(
            &[
                "USER",
                "FINGERPRINT",
                "TYPE",
                "COMMENT",
                "SOURCE",
                "REGISTERED"
            ],
            &rows
        )
    )?;
    Ok(ExitCode::SUCCESS)
}

fn remove(client: &Client, key: &str) -> anyhow::Result<ExitCode> {
    let fingerprint = match key.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("SHA256:") => format!("SHA256:{}", &key[7..]),
        _ => {
            let file = public_file(Path::new(key));
            if !file.exists() {
                bail!(
                    "{key} is neither a key fingerprint (SHA256:..., as `countersign keys list` \
                     shows it) nor a public key file"
                );
            }
            let line = read_public_key(&file)?;
            crate::pubkey::SubjectKey::parse(&line)
                .map_err(|e| anyhow!("{}: {e}", file.display()))?
                .fingerprint()
        }
    };
    let v: Value = client.post("/v1/keys/remove", &json!({ "fingerprint": fingerprint }))?;
    outln!(
        "removed {} of {}",
        v["removed"]["fingerprint"].as_str().unwrap_or_default(),
        v["removed"]["user"].as_str().unwrap_or_default()
    )?;
    for id in v["cancelled"].as_array().into_iter().flatten() {
        outln!(
            "cancelled pending request {} (it was for this key)",
            id.as_str().unwrap_or_default()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
