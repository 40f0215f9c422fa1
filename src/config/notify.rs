//! `[[notify]]`: where countersign tells people about requests. Each sink is a Slack
//! incoming webhook or a signed JSON webhook (Standard Webhooks); its URL, a secret, is
//! read from a file at start, never written in the config.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Builder, ConfigError, CredentialPath};
use crate::names::RoleName;
use crate::policy::Policy;

/// `[[notify]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub name: String,
    pub kind: String,
    pub url_file: String,
    pub events: Vec<String>,
    pub roles: Option<Vec<String>>,
    pub secret_file: Option<String>,
    pub give_up_after: Option<String>,
}

/// What a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Slack's incoming-webhook JSON (`text` + `blocks`).
    Slack,
    /// Versioned JSON signed by the Standard Webhooks scheme.
    Webhook,
}

impl SinkKind {
    /// `slack` or `webhook`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// The events a sink can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// A request waits for approvers.
    RequestCreated,
    /// A request ended: issued, denied, expired, refused or cancelled.
    RequestDecided,
    /// A certificate was revoked.
    CertificateRevoked,
    /// A delivery gave up.
    NotifyDead,
    /// Someone broke the glass: every sink is told, whatever its `events` and `roles`.
    BreakglassUsed,
    /// A break-glass review's deadline approaches: every sink is told.
    BreakglassReminded,
    /// A break-glass review passed its deadline: every sink is told.
    BreakglassOverdue,
    /// A reviewer gave a verdict on a break-glass use (only sinks that ask).
    BreakglassReviewed,
    /// An admin allowed one more break-glass use while the last waits for its review
    /// (only sinks that ask).
    BreakglassAllowed,
}

impl NotifyEvent {
    /// Every event.
    pub const ALL: [NotifyEvent; 9] = [
        NotifyEvent::RequestCreated,
        NotifyEvent::RequestDecided,
        NotifyEvent::CertificateRevoked,
        NotifyEvent::NotifyDead,
        NotifyEvent::BreakglassUsed,
        NotifyEvent::BreakglassReminded,
        NotifyEvent::BreakglassOverdue,
        NotifyEvent::BreakglassReviewed,
        NotifyEvent::BreakglassAllowed,
    ];

    /// The event's name (`request.created`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::RequestCreated => "request.created",
            NotifyEvent::RequestDecided => "request.decided",
            NotifyEvent::CertificateRevoked => "certificate.revoked",
            NotifyEvent::NotifyDead => "notify.dead",
            NotifyEvent::BreakglassUsed => "breakglass.used",
            NotifyEvent::BreakglassReminded => "breakglass.reminded",
            NotifyEvent::BreakglassOverdue => "breakglass.overdue",
            NotifyEvent::BreakglassReviewed => "breakglass.reviewed",
            NotifyEvent::BreakglassAllowed => "breakglass.allowed",
        }
    }

    /// The event named `s`.
    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One `[[notify]]` sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySink {
    /// Its name (what `notify status` and the audit log call it).
    pub name: String,
    /// What it speaks.
    pub kind: SinkKind,
    /// The file holding its URL (a secret).
    pub url_file: CredentialPath,
    /// What it is told.
    pub events: BTreeSet<NotifyEvent>,
    /// Only events of these roles; every role's when `None`.
    pub roles: Option<BTreeSet<RoleName>>,
    /// `webhook`: the file holding the signing key (`whsec_` + base64, as Standard
    /// Webhooks writes it, or any other text: its bytes).
    pub secret_file: Option<CredentialPath>,
    /// A delivery that has not succeeded after this long gives up (`notify.dead`).
    pub give_up_after: Duration,
}

impl NotifySink {
    /// Whether this sink may hear of requests for `role`: every role's without a
    /// `roles` filter, else only those (and nothing when the role is unknown).
    pub fn covers(&self, role: Option<&RoleName>) -> bool {
        match (&self.roles, role) {
            (None, _) => true,
            (Some(roles), Some(r)) => roles.contains(r),
            (Some(_), None) => false,
        }
    }

    /// Whether this sink is told of `event` about a request for `role`.
    pub fn wants(&self, event: NotifyEvent, role: &RoleName) -> bool {
        self.events.contains(&event) && self.covers(Some(role))
    }
}

fn sink_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Builder<'_> {
    pub(super) fn notify(
        &self,
        raw: Vec<RawNotify>,
        policy: &Policy,
        base: &Path,
    ) -> Result<Vec<NotifySink>, ConfigError> {
        let mut sinks: Vec<NotifySink> = Vec::new();
        for (i, n) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("notify[{i}].{k}");
            if !sink_name(&n.name) {
                return Err(self.err(
                    key("name"),
                    "1-64 of a-z, 0-9, '-' and '_' (it names the sink in logs and commands)",
                ));
            }
            if sinks.iter().any(|s| s.name == n.name) {
                return Err(self.err(key("name"), format!("{:?} is named twice", n.name)));
            }
            let kind = match n.kind.as_str() {
                "slack" => SinkKind::Slack,
                "webhook" => SinkKind::Webhook,
                other => {
                    return Err(self.err(
                        key("kind"),
                        format!("{other:?}: must be \"slack\" or \"webhook\""),
                    ));
                }
            };
            let url_file = CredentialPath::parse(&n.url_file, base)
                .map_err(|e| self.err(key("url_file"), e))?;
            let secret_file = match (kind, n.secret_file) {
                (SinkKind::Webhook, Some(f)) => Some(
                    CredentialPath::parse(&f, base).map_err(|e| self.err(key("secret_file"), e))?,
                ),
                (SinkKind::Webhook, None) => {
                    return Err(self.err(
                        key("secret_file"),
                        "a webhook needs the file of its signing key",
                    ));
                }
                (SinkKind::Slack, Some(_)) => {
                    return Err(self.err(
                        key("secret_file"),
                        "only a \"webhook\" sink is signed; Slack's URL is its secret",
                    ));
                }
                (SinkKind::Slack, None) => None,
            };
            if n.events.is_empty() {
                return Err(self.err(key("events"), "name at least one event"));
            }
            let mut events = BTreeSet::new();
            for e in &n.events {
                let event = NotifyEvent::parse(e).ok_or_else(|| {
                    self.err(
                        key("events"),
                        format!(
                            "{e:?}: one of {}",
                            NotifyEvent::ALL.map(NotifyEvent::as_str).join(", ")
                        ),
                    )
                })?;
                events.insert(event);
            }
            let roles = match n.roles {
                None => None,
                Some(list) => {
                    let mut roles = BTreeSet::new();
                    for r in &list {
                        let role = RoleName::parse(r).map_err(|e| self.err(key("roles"), e))?;
                        if !policy.roles.contains_key(&role) {
                            return Err(self.err(key("roles"), format!("no role {role}")));
                        }
                        roles.insert(role);
                    }
                    Some(roles)
                }
            };
            let give_up_after =
                self.duration(&key("give_up_after"), n.give_up_after.as_deref(), "24h")?;
            if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600))
                .contains(&give_up_after)
            {
                return Err(self.err(key("give_up_after"), "must be between 1m and 7d"));
            }
            sinks.push(NotifySink {
                name: n.name,
                kind,
                url_file,
                events,
                roles,
                secret_file,
                give_up_after,
            });
        }
        Ok(sinks)
    }
}
