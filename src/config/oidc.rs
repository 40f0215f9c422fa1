//! `[oidc]`: people sign in with the company's identity provider (OpenID Connect).
//! countersign is the provider's only client here: its secret stays on the CA host.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Builder, ConfigError, CredentialPath};
use crate::names::GroupName;

/// `[oidc]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: String,
    pub client_auth: Option<String>,
    pub public_url: String,
    pub scopes: Option<Vec<String>>,
    pub username_claim: Option<String>,
    pub groups_claim: Option<String>,
    pub session_ttl: Option<String>,
    pub approval_max_auth_age: Option<String>,
    pub human_tokens: Option<bool>,
    pub device_flow: Option<bool>,
    #[serde(default)]
    pub allow_insecure_loopback_issuer: bool,
    #[serde(default)]
    pub group_map: Vec<RawGroupMap>,
}

/// `[[oidc.group_map]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroupMap {
    pub claim: String,
    pub groups: Vec<String>,
}

/// How countersign proves itself to the provider's token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic authentication (the default).
    Basic,
    /// `client_secret_post`: the secret in the form body.
    Post,
}

/// `[oidc]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The provider's issuer identifier, exactly as its ID tokens name it.
    pub issuer: String,
    /// countersign's client id at the provider.
    pub client_id: String,
    /// Where the client secret is read from (first line).
    pub client_secret_file: CredentialPath,
    /// How the secret is presented.
    pub client_auth: ClientAuth,
    /// Where browsers reach countersign, without a trailing `/`.
    pub public_url: String,
    /// The scopes asked for (always with `openid`).
    pub scopes: Vec<String>,
    /// The claim whose value becomes the countersign user name.
    pub username_claim: String,
    /// The claim that lists the person's groups at the provider.
    pub groups_claim: String,
    /// How long a session lives, from its sign-in; never longer.
    pub session_ttl: Duration,
    /// Approving needs a sign-in at the provider at most this old.
    pub approval_max_auth_age: Duration,
    /// Whether people may still use hand-made bearer tokens.
    pub human_tokens: bool,
    /// Whether `countersign login --device` (RFC 8628) is offered.
    pub device_flow: bool,
    /// Whether an `http://127.0.0.1` issuer is accepted (tests only).
    pub allow_insecure_loopback_issuer: bool,
    /// Provider groups and the countersign groups each gives; unmapped ones give nothing.
    pub group_map: Vec<GroupMap>,
}

/// One `[[oidc.group_map]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMap {
    /// The group's name in the provider's groups claim.
    pub claim: String,
    /// The countersign groups it gives.
    pub groups: Vec<GroupName>,
}

impl OidcSettings {
    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/v1/oidc/callback", self.public_url)
    }

    /// The countersign groups that the provider groups `claimed` give (deny by default).
    pub fn mapped_groups<'a>(&self, claimed: impl IntoIterator<Item = &'a str>) -> Vec<GroupName> {
        let claimed: std::collections::BTreeSet<&str> = claimed.into_iter().collect();
        let mut out: Vec<GroupName> = self
            .group_map
            .iter()
            .filter(|m| claimed.contains(m.claim.as_str()))
            .flat_map(|m| m.groups.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Whether `url` is `http(s)://` on the loopback address, as tests run a provider.
fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// A URL countersign will talk to or send people to: `https://` (or a loopback `http://`
/// where allowed), no credentials, query or fragment; returned without a trailing `/`.
fn checked_url(url: &str, loopback_http: bool) -> Result<String, String> {
    let url = url.trim();
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if loopback_http && is_loopback_http(url) => {}
        "http" => return Err(format!("{url:?} must be https://")),
        other => return Err(format!("{url:?}: the scheme {other:?} is not https")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold a user name or password".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A claim name: what a JSON object key in an ID token may reasonably be.
fn claim_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > 100 || name.chars().any(|c| c.is_control()) {
        return Err(format!("{name:?} is not a claim name"));
    }
    Ok(name.to_owned())
}

impl Builder<'_> {
    pub(super) fn oidc(&self, raw: RawOidc, base: &Path) -> Result<OidcSettings, ConfigError> {
        let issuer = checked_url(&raw.issuer, raw.allow_insecure_loopback_issuer)
            .map_err(|e| self.err("oidc.issuer", e))?;
        // The issuer is compared with the ID token's `iss` as written: keep it so.
        let issuer = if raw.issuer.trim().ends_with('/') {
            format!("{issuer}/")
        } else {
            issuer
        };
        let public_url =
            checked_url(&raw.public_url, true).map_err(|e| self.err("oidc.public_url", e))?;
        if raw.client_id.is_empty() || raw.client_id.chars().any(char::is_control) {
            return Err(self.err("oidc.client_id", "must not be empty"));
        }
        let client_secret_file = CredentialPath::parse(&raw.client_secret_file, base)
            .map_err(|e| self.err("oidc.client_secret_file", e))?;
        let client_auth = match raw.client_auth.as_deref().unwrap_or("basic") {
            "basic" => ClientAuth::Basic,
            "post" => ClientAuth::Post,
            other => {
                return Err(self.err(
                    "oidc.client_auth",
                    format!("{other:?}: must be \"basic\" or \"post\""),
                ));
            }
        };
        let scopes = raw.scopes.unwrap_or_else(|| {
            ["openid", "profile", "email", "groups"]
                .map(str::to_owned)
                .to_vec()
        });
        if !scopes.iter().any(|s| s == "openid") {
            return Err(self.err("oidc.scopes", "must include \"openid\""));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err(self.err("oidc.scopes", format!("{bad:?} is not a scope")));
        }
        let username_claim = claim_name(
            raw.username_claim
                .as_deref()
                .unwrap_or("preferred_username"),
        )
        .map_err(|e| self.err("oidc.username_claim", e))?;
        let groups_claim = claim_name(raw.groups_claim.as_deref().unwrap_or("groups"))
            .map_err(|e| self.err("oidc.groups_claim", e))?;
        let session_ttl = self.duration("oidc.session_ttl", raw.session_ttl.as_deref(), "8h")?;
        if !(Duration::from_secs(60)..=Duration::from_secs(30 * 24 * 3600)).contains(&session_ttl) {
            return Err(self.err("oidc.session_ttl", "must be between 1m and 30d"));
        }
        let approval_max_auth_age = self.duration(
            "oidc.approval_max_auth_age",
            raw.approval_max_auth_age.as_deref(),
            "15m",
        )?;
        if approval_max_auth_age > session_ttl {
            return Err(self.err(
                "oidc.approval_max_auth_age",
                "must not be longer than session_ttl",
            ));
        }
        let mut group_map = Vec::new();
        for (i, m) in raw.group_map.into_iter().enumerate() {
            let key = format!("oidc.group_map[{i}]");
            if m.claim.is_empty() {
                return Err(self.err(format!("{key}.claim"), "must not be empty"));
            }
            let groups = m
                .groups
                .iter()
                .map(|g| GroupName::parse(g).map_err(|e| self.err(format!("{key}.groups"), e)))
                .collect::<Result<Vec<_>, _>>()?;
            group_map.push(GroupMap {
                claim: m.claim,
                groups,
            });
        }
        Ok(OidcSettings {
            issuer,
            client_id: raw.client_id,
            client_secret_file,
            client_auth,
            public_url,
            scopes,
            username_claim,
            groups_claim,
            session_ttl,
            approval_max_auth_age,
            human_tokens: raw.human_tokens.unwrap_or(true),
            device_flow: raw.device_flow.unwrap_or(true),
            allow_insecure_loopback_issuer: raw.allow_insecure_loopback_issuer,
            group_map,
        })
    }
}
