//! `countersign known-hosts` and `countersign ssh-config`: what an SSH client needs to
//! trust host certificates, and only them, for the company's hosts.
//!
//! `known-hosts` prints the `@cert-authority` line for a dedicated known_hosts file.
//! `ssh-config` prints the `Host` block that makes that file the only trust: strict
//! checking (an unknown, expired or wrong-name certificate is a hard failure, never a
//! prompt), no global known_hosts (a plain host key pinned there would win over an
//! expired certificate), no learned keys (`UpdateHostKeys no`), and the host KRL.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::Args;
use ssh_key::{HashAlg, PublicKey};

use crate::cli::client::Client;
use crate::names::HostPrincipal;

/// Where `ssh-config` points `UserKnownHostsFile` unless told otherwise.
const KNOWN_HOSTS: &str = "~/.ssh/countersign_known_hosts";

/// Where `ssh-config` points `RevokedHostKeys` unless told otherwise.
const HOST_KRL: &str = "~/.ssh/countersign_host.krl";

/// `known-hosts` arguments.
#[derive(Debug, Args)]
pub struct KnownHostsArgs {
    /// Trust the host CA for names under this domain only (`*.DOMAIN`); repeat it for
    /// several domains [default: every host, `*`].
    #[arg(long)]
    pub domain: Vec<String>,
    /// Print the line for this host CA public key file instead of fetching the server's
    /// /v1/host_ca.pub.
    #[arg(long)]
    pub ca_key: Option<PathBuf>,
}

/// `ssh-config` arguments.
#[derive(Debug, Args)]
pub struct SshConfigArgs {
    /// The block's hosts: names under this domain (`Host *.DOMAIN`); repeat it for
    /// several [default: every host, `Host *`].
    #[arg(long)]
    pub domain: Vec<String>,
    /// The dedicated known_hosts file holding only the `@cert-authority` line.
    #[arg(long, default_value = KNOWN_HOSTS)]
    pub known_hosts: String,
    /// The host KRL file `countersign krl sync --host` keeps current.
    #[arg(long, default_value = HOST_KRL)]
    pub krl: String,
}

/// `countersign known-hosts`: prints `@cert-authority PATTERNS KEY`.
pub(in crate::cli) fn known_hosts(url: &str, args: &KnownHostsArgs) -> anyhow::Result<ExitCode> {
    let patterns = patterns(&args.domain)?;
    let key = match &args.ca_key {
        Some(path) => crate::cli::krl::read_key(path)?,
        None => {
            let client = Client::anonymous(url)?;
            let line = client.get_text("/v1/host_ca.pub")?;
            let key = PublicKey::from_openssh(line.trim()).map_err(|e| {
                anyhow!("the server's /v1/host_ca.pub is not an OpenSSH public key: {e}")
            })?;
            eprintln!(
                "host CA key {} fetched from {}: compare it with the fingerprint the CA's \
                 operator gives you (`ssh-keygen -lf` of the host CA key) before trusting it",
                key.fingerprint(HashAlg::Sha256),
                client.base()
            );
            key
        }
    };
    outln!(
        "@cert-authority {} {}",
        patterns.join(","),
        key.to_openssh()?
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `countersign ssh-config`: prints the client's `Host` block.
pub(in crate::cli) fn ssh_config(url: &str, args: &SshConfigArgs) -> anyhow::Result<ExitCode> {
    let patterns = patterns(&args.domain)?;
    let known_hosts = config_path(&args.known_hosts, "--known-hosts")?;
    let krl = config_path(&args.krl, "--krl")?;
    let domains: String = patterns
        .iter()
        .filter_map(|p| p.strip_prefix("*."))
        .map(|d| format!(" --domain {d}"))
        .collect();
    let url = if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        bail!("--url/COUNTERSIGN_URL {url:?} has spaces or control characters");
    } else {
        url.trim_end_matches('/')
    };
    out!(
        "\
# countersign: hosts prove who they are with a certificate of the host CA; no prompt.
# Create both files first, and keep the KRL current (a cron job or a user timer):
#   countersign --url {url} known-hosts{domains} > {known_hosts}
#   countersign --url {url} krl sync --host --out {krl} --once
# If the RevokedHostKeys file is missing, ssh refuses EVERY host of this block.
# Put this block before other Host blocks that match the same names (first match wins).
Host {hosts}
    StrictHostKeyChecking yes
    UserKnownHostsFile {known_hosts}
    GlobalKnownHostsFile /dev/null
    RevokedHostKeys {krl}
    UpdateHostKeys no
",
        hosts = patterns.join(" ")
    )?;
    if args.domain.is_empty() {
        eprintln!(
            "warning: without --domain the block is `Host *`: every host you reach must then \
             have a certificate of this host CA (GitHub's would be refused)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The host patterns of `--domain`s: `*.DOMAIN` each, or `*` when there is none.
fn patterns(domains: &[String]) -> anyhow::Result<Vec<String>> {
    if domains.is_empty() {
        return Ok(vec!["*".to_owned()]);
    }
    domains
        .iter()
        .map(|d| Ok(format!("*.{}", domain(d)?)))
        .collect()
}

/// One `--domain`: a lower-case DNS name (a leading `*.` is taken off).
fn domain(raw: &str) -> anyhow::Result<&str> {
    let name = raw.strip_prefix("*.").unwrap_or(raw);
    match HostPrincipal::parse(name) {
        Ok(HostPrincipal::Name(_)) => Ok(name),
        Ok(HostPrincipal::Ip(_)) => bail!("--domain {raw}: an IP address is not a domain"),
        Err(e) => bail!("--domain {raw:?}: {e}"),
    }
}

/// A file path for ssh_config: quoted when it has spaces; refused when ssh could not
/// read it back (a quote, a control character).
fn config_path(path: &str, flag: &str) -> anyhow::Result<String> {
    if path.is_empty() || path.chars().any(|c| c.is_control() || c == '"') {
        bail!("{flag} {path:?}: a file path without quotes or control characters");
    }
    if path.contains(char::is_whitespace) {
        return Ok(format!("\"{path}\""));
    }
    Ok(path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_become_wildcard_patterns_and_bad_ones_are_named() {
        assert_eq!(patterns(&[]).unwrap(), ["*"]);
        let two = ["example.com".to_owned(), "*.corp.example.org".to_owned()];
        assert_eq!(
            patterns(&two).unwrap(),
            ["*.example.com", "*.corp.example.org"]
        );
        for bad in [
            "Example.com",
            "10.0.0.5",
            "*",
            "a b",
            "ex*.com",
            "",
            "a.com,b.com",
        ] {
            assert!(patterns(&[bad.to_owned()]).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn paths_with_spaces_are_quoted_and_quotes_refused() {
        assert_eq!(config_path("~/.ssh/kh", "-").unwrap(), "~/.ssh/kh");
        assert_eq!(config_path("/a b/kh", "-").unwrap(), "\"/a b/kh\"");
        assert!(config_path("/a\"b", "-").is_err());
        assert!(config_path("/a\nb", "-").is_err());
    }
}
