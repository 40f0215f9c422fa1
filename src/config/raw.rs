//! The TOML file's shape, exactly; any key not named here is an error.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use serde::Deserialize;

use crate::policy::{Policy, PrincipalTemplate};

/// The TOML parser's complaint about `text` on one line (it goes to logs as one line too):
/// where, as a line and column and the key or table there, then what. The parser's own
/// text draws the line under a caret over several lines, which one line would garble.
pub(super) fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let what = redacted(e.message().trim_end()).replace('\n', " ");
    let Some(before) = e.span().and_then(|span| text.get(..span.start)) else {
        return what;
    };
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    // The key or table the line names, not its text (a value may be a secret); a line
    // that is neither (inside a multi-line string) is not named at all.
    let text_line = text.lines().nth(line - 1).unwrap_or("").trim();
    let named = match text_line.split_once('=') {
        Some((key, _)) => Some(key.trim()),
        None => text_line
            .strip_prefix('[')
            .map(|t| t.trim_matches(['[', ']'])),
    };
    let at = match named.filter(|k| is_key(k)) {
        Some(key) => format!(" (`{}`)", shortened(key)),
        None => String::new(),
    };
    format!("line {line}, column {column}{at}: {what}")
}

/// Whether `s` reads as a TOML key (bare parts, dotted, or quoted), not a value.
fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '"'))
}

/// The parser's message without the values it quotes from the file (`invalid type:
/// string "Hunter2"`, ``integer `42` ``, ``unknown variant `x` ``): a value may be a
/// secret, and the message goes to logs. Kept: key names (``unknown field `port` ``, the
/// user's typo; ``missing field `reason` ``) and everything after "expected" (the names it
/// knows).
fn redacted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let quote_at = rest.find(['"', '`']);
        // Past an unquoted "expected", the text is the parser's: kept whole.
        if let Some(x) = rest.find("expected")
            && quote_at.is_none_or(|q| x < q)
        {
            out.push_str(rest);
            return out;
        }
        let Some(at) = quote_at else {
            out.push_str(rest);
            return out;
        };
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let quote = from.chars().next().unwrap_or('"');
        let body = &from[1..];
        let end = quoted_end(body, quote);
        // A key's name (``unknown field `port` ``, `missing`, `duplicate`): not a value.
        let keep = quote == '`' && (before.ends_with("field ") || before.ends_with("key "));
        out.push(quote);
        out.push_str(if keep { &body[..end] } else { "…" });
        out.push(quote);
        rest = body.get(end + 1..).unwrap_or("");
    }
}

/// Where the quoted text starting `body` ends (its closing `quote`; a `\` escapes the next
/// character in a double-quoted one), or its length.
fn quoted_end(body: &str, quote: char) -> usize {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quote == '"' => escaped = true,
            c if c == quote => return i,
            _ => {}
        }
    }
    body.len()
}

/// At most 60 characters of `s`, with `...` when cut.
fn shortened(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_owned(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub ca: RawCa,
    /// `[host_ca]`: absent means no host certificates.
    pub host_ca: Option<RawHostCa>,
    #[serde(default)]
    pub requests: RawRequests,
    #[serde(default)]
    pub storage: RawStorage,
    /// `[ssh]`: absent means the SSH front door is off.
    pub ssh: Option<RawSsh>,
    #[serde(default)]
    pub users: BTreeMap<String, RawUser>,
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    pub conflicts: Vec<RawConflict>,
    /// `[oidc]`: absent means people use bearer tokens only.
    pub oidc: Option<super::oidc::RawOidc>,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub notify: Vec<super::notify::RawNotify>,
    /// `[metrics]`: absent means no metrics listener.
    pub metrics: Option<RawMetrics>,
    /// `[policy]`: absent means the file takes effect unsigned.
    pub policy: Option<RawPolicySigning>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicySigning {
    pub signers: Option<Vec<String>>,
    pub signatures_required: Option<i64>,
    pub version: Option<i64>,
    pub ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    #[serde(default)]
    pub allow_plain_http: bool,
    pub max_header_bytes: Option<usize>,
    pub request_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_address: Option<usize>,
    pub max_concurrent_requests: Option<usize>,
    pub auth_failures_per_address: Option<u32>,
    pub auth_failures_per_token: Option<u32>,
    pub auth_failure_window: Option<String>,
    pub sign_in_requests_per_minute: Option<u32>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub timezone: Option<String>,
    pub working_hours: Option<String>,
    pub log_format: Option<String>,
    pub shutdown_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub backend: Option<String>,
    pub url: Option<String>,
    pub password_file: Option<String>,
    pub pool_size: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCa {
    pub key_file: Option<String>,
    pub backdate: Option<String>,
    pub passphrase_file: Option<String>,
    #[serde(default)]
    pub agent: bool,
    pub agent_public_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHostCa {
    pub key_file: Option<String>,
    pub passphrase_file: Option<String>,
    #[serde(default)]
    pub agent: bool,
    pub agent_public_key: Option<String>,
    pub cert_ttl: Option<String>,
    pub max_ttl: Option<String>,
    #[serde(default)]
    pub allowed_principals: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequests {
    pub pending_ttl: Option<String>,
    pub revocation_grace: Option<String>,
    pub max_pending_per_user: Option<u32>,
    pub require_registered_keys: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsh {
    pub listen: Option<String>,
    pub host_key_file: Option<String>,
    pub idle_timeout: Option<String>,
    pub connection_timeout: Option<String>,
    pub max_connections: Option<u32>,
    pub max_sessions_per_user: Option<u32>,
    pub auth_failures_per_minute: Option<u32>,
    pub max_connections_per_address: Option<u32>,
    pub auth_timeout: Option<String>,
    pub max_channels_per_connection: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default)]
    pub admin: bool,
    pub oidc_subject: Option<String>,
    #[serde(default)]
    pub bot: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRole {
    pub principals: Vec<String>,
    pub requesters: Vec<String>,
    pub approvers: Option<Vec<String>>,
    pub approvals: Option<u32>,
    pub approval_steps: Option<Vec<RawStep>>,
    pub default_ttl: Option<String>,
    pub max_ttl: Option<String>,
    pub extensions: Option<Vec<String>>,
    pub force_command: Option<String>,
    pub source_address: Option<Vec<String>>,
    pub break_glass: Option<super::break_glass::RawBreakGlass>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub approvers: Vec<String>,
    pub approvals: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConflict {
    pub roles: Vec<String>,
    pub reason: String,
}

/// The certificate extensions OpenSSH defines (PROTOCOL.certkeys).
pub(super) const STANDARD_EXTENSIONS: [&str; 6] = [
    "no-touch-required",
    "permit-X11-forwarding",
    "permit-agent-forwarding",
    "permit-port-forwarding",
    "permit-pty",
    "permit-user-rc",
];

/// Principals: literal or with `{user}`; every expansion for every configured user must be
/// a valid principal, so signing never meets a bad one.
pub(super) fn principals(
    policy: &Policy,
    raw: &[String],
) -> Result<Vec<PrincipalTemplate>, String> {
    if raw.is_empty() {
        return Err("must list at least one principal".into());
    }
    let mut out = Vec::new();
    for p in raw {
        let t = PrincipalTemplate(p.clone());
        if p.contains(PrincipalTemplate::USER) {
            let rest = p.replace(PrincipalTemplate::USER, "");
            if rest.contains('{') || rest.contains('}') {
                return Err(format!("{p:?}: the only placeholder is {{user}}"));
            }
            for user in policy.users.keys() {
                t.expand(user)
                    .map_err(|e| format!("{p:?} for user {user}: {e}"))?;
            }
            crate::names::Principal::parse(&p.replace(PrincipalTemplate::USER, "u"))
                .map_err(|e| e.to_string())?;
        } else {
            crate::names::Principal::parse(p).map_err(|e| e.to_string())?;
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

pub(super) fn extensions(raw: Option<Vec<String>>) -> Result<BTreeSet<String>, String> {
    let raw = raw.unwrap_or_else(|| vec!["permit-pty".to_owned()]);
    let mut out = BTreeSet::new();
    for e in raw {
        if !STANDARD_EXTENSIONS.contains(&e.as_str()) {
            return Err(format!(
                "{e:?} is not a standard OpenSSH extension (one of {})",
                STANDARD_EXTENSIONS.join(", ")
            ));
        }
        out.insert(e);
    }
    Ok(out)
}

pub(super) fn force_command(raw: Option<String>) -> Result<Option<String>, String> {
    match raw {
        None => Ok(None),
        Some(c) if c.trim().is_empty() => Err("must not be empty".into()),
        Some(c) if c.len() > 1024 || c.chars().any(char::is_control) => {
            Err("at most 1024 characters, no control characters".into())
        }
        Some(c) => Ok(Some(c)),
    }
}

/// A CIDR network (`10.0.0.0/8`) or a single address (a network of one). A network with
/// host bits set is refused: sshd refuses such a `source-address` (and then every
/// login), and in a list of trusted proxies `10.0.0.5/24` would trust a whole network
/// where one host was meant.
pub(super) fn ip_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = s
        .parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .ok_or_else(|| format!("{s:?} is not an IP address or a CIDR such as 10.0.0.0/8"))?;
    if net.trunc() != net {
        return Err(format!(
            "{s:?} has host bits set: did you mean {}?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// CIDRs (`10.0.0.0/8`) or single addresses, as sshd's `source-address` accepts them.
pub(super) fn source_address(raw: Option<Vec<String>>) -> Result<Vec<IpNet>, String> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    if raw.is_empty() {
        return Err("must not be empty when given (omit it to allow any address)".into());
    }
    raw.iter().map(|s| ip_net(s)).collect()
}
