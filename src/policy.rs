//! The validated policy (users, groups, roles, conflicts) and its pure decisions.
//!
//! [`Policy`] is what `config.rs` builds from TOML; nothing here reads files, a clock or a
//! database. The separation-of-duties rules live in [`rules`], each a named function that
//! takes the facts (who, which role, who approved, what the requester holds) and returns a
//! decision value.

pub mod people;
pub mod rules;
pub mod summary;

pub use people::{IdpGroups, People};

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::names::{GroupName, Principal, RoleName, UserName};
use crate::pubkey::SubjectKey;

/// Everything the CA decides with: who exists, which roles exist and which clash.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Users by name.
    pub users: BTreeMap<UserName, User>,
    /// Roles by name.
    pub roles: BTreeMap<RoleName, Role>,
    /// Declared conflicts; symmetric.
    pub conflicts: Vec<Conflict>,
    /// Who each `ssh_keys` key belongs to, built at the first lookup (the users do not
    /// change once a policy is built): a lookup per check instead of a walk over every
    /// user's keys, which a request and its signing each made several times.
    /// Keyed by [`SubjectKey::material`]: a key in another form (a security key's of the
    /// same point) is the same key.
    pub key_owners: std::sync::OnceLock<std::collections::HashMap<Vec<u8>, UserName>>,
    /// `[policy]`: whose signatures the configuration file needs (`signoff.rs`); `None`
    /// for an unsigned policy.
    pub signing: Option<crate::signoff::Signing>,
}

/// A person; tokens and SSH keys resolve to exactly one.
#[derive(Debug, Clone)]
pub struct User {
    /// The user's name.
    pub name: UserName,
    /// Groups the user belongs to.
    pub groups: BTreeSet<GroupName>,
    /// Admins may read the audit log and see all requests; they approve like anyone else.
    pub admin: bool,
    /// When non-empty, certificates are only issued for one of these keys.
    pub ssh_keys: Vec<SubjectKey>,
    /// The comments of the config's key lines that had one (`keys list` shows them), by
    /// fingerprint; no part of the policy's rules or digest.
    pub key_comments: BTreeMap<String, String>,
    /// The person (`sub` at the identity provider) this name is reserved for: a sign-in
    /// by anyone else with this name is refused (`identity_conflict`).
    pub oidc_subject: Option<String>,
    /// A service account (`bot = true`): it may request and fetch, never approve or
    /// deny (by token, session or SSH key alike), and never counts toward a tally.
    pub bot: bool,
}

/// Who a `requesters` or `approvers` entry names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub enum Member {
    /// `group:NAME`: every user in that group.
    Group(GroupName),
    /// `user:NAME`: one user.
    User(UserName),
}

impl User {
    /// The comment the config's line of `key` had, or "" (see [`User::key_comments`]).
    pub fn key_comment(&self, key: &SubjectKey) -> &str {
        self.key_comments
            .get(&key.fingerprint())
            .map_or("", String::as_str)
    }
}

impl Member {
    /// `group:NAME` or `user:NAME`, as written (and as [`Member`]'s display writes it).
    pub fn parse(s: &str) -> Option<Member> {
        match s.split_once(':')? {
            ("group", g) => GroupName::parse(g).ok().map(Member::Group),
            ("user", u) => UserName::parse(u).ok().map(Member::User),
            _ => None,
        }
    }
}

impl From<Member> for String {
    fn from(m: Member) -> String {
        m.to_string()
    }
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Group(g) => write!(f, "group:{g}"),
            Member::User(u) => write!(f, "user:{u}"),
        }
    }
}

/// A principal as written in a role: a fixed name or a template with `{user}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PrincipalTemplate(pub String);

impl PrincipalTemplate {
    /// The placeholder replaced by the requester's name.
    pub const USER: &'static str = "{user}";

    /// Whether it names `{user}`.
    pub fn is_template(&self) -> bool {
        self.0.contains(Self::USER)
    }

    /// The user name for which this template gives `principal`, if there is one.
    pub fn user_giving(&self, principal: &str) -> Option<UserName> {
        let parts: Vec<&str> = self.0.split(Self::USER).collect();
        let fixed: usize = parts.iter().map(|p| p.len()).sum();
        let holes = parts.len().checked_sub(1).filter(|&n| n > 0)?;
        let room = principal.len().checked_sub(fixed)?;
        if room % holes != 0 {
            return None;
        }
        let start = parts[0].len();
        let name = principal.get(start..start + room / holes)?;
        let user = UserName::parse(name).ok()?;
        (self.expand(&user).ok()?.as_str() == principal).then_some(user)
    }

    /// The principal for one requester; validated again so a template can never produce
    /// a principal the config loader would have refused.
    pub fn expand(&self, user: &UserName) -> Result<Principal, crate::names::InvalidName> {
        Principal::parse(&self.0.replace(Self::USER, user.as_str()))
    }
}

/// One stage of approval: `approvals` distinct people from `approvers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// Who may approve in this step.
    pub approvers: Vec<Member>,
    /// How many distinct people must.
    pub approvals: u32,
}

/// A role that can be requested, with everything that shapes its certificates.
#[derive(Debug, Clone, Serialize)]
pub struct Role {
    /// The role's name.
    pub name: RoleName,
    /// Principals of its certificates.
    pub principals: Vec<PrincipalTemplate>,
    /// Who may ask for it.
    pub requesters: Vec<Member>,
    /// Every step must be met; one person's approval counts toward one step only.
    pub steps: Vec<Step>,
    /// TTL when a request names none.
    #[serde(with = "secs")]
    pub default_ttl: Duration,
    /// Longest TTL a request may ask for.
    #[serde(with = "secs")]
    pub max_ttl: Duration,
    /// Certificate extensions (standard OpenSSH names only).
    pub extensions: BTreeSet<String>,
    /// `force-command` critical option.
    pub force_command: Option<String>,
    /// `source-address` critical option.
    pub source_address: Vec<IpNet>,
    /// `[roles.NAME.break_glass]`: who may take the role at once in an emergency, and who
    /// reviews it afterwards; `None`: the role cannot be broken into. Not part of the
    /// digest: it does not change what a request for the role gets.
    #[serde(skip)]
    pub break_glass: Option<BreakGlass>,
    /// [`Role::digest`], computed once.
    #[serde(skip)]
    pub cached_digest: std::sync::OnceLock<String>,
}

/// `[roles.NAME.break_glass]`: issuing at once, without approval, to `invokers`, and a
/// mandatory review afterwards by `reviews` distinct `reviewers` (never the invoker).
#[derive(Debug, Clone)]
pub struct BreakGlass {
    /// Who may break the glass.
    pub invokers: Vec<Member>,
    /// The longest certificate: a longer TTL asked for is cut to this.
    pub max_ttl: Duration,
    /// What the reason must match (e.g. an incident id), if anything.
    pub reason_pattern: Option<ReasonPattern>,
    /// Who reviews a use afterwards.
    pub reviewers: Vec<Member>,
    /// Distinct reviewers needed to close a review.
    pub reviews: u32,
    /// How soon after a use its review is due.
    pub review_within: Duration,
}

/// A `reason_pattern`: the regular expression (the `regex` crate's syntax: linear time,
/// whatever the pattern or the text) and its source, as written.
#[derive(Debug, Clone)]
pub struct ReasonPattern {
    /// As written in the config.
    pub source: String,
    /// Compiled.
    pub regex: regex::Regex,
}

impl ReasonPattern {
    /// Whether `reason` matches (anywhere, unless the pattern anchors it).
    pub fn matches(&self, reason: &str) -> bool {
        self.regex.is_match(reason)
    }
}

mod secs {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Role {
    /// SHA-256 over the role's canonical definition. A request stores the digest of the
    /// role it was made for; a different digest at signing means the role changed.
    pub fn digest(&self) -> String {
        self.cached_digest
            .get_or_init(|| {
                // Serialising plain data with derived impls cannot fail.
                let canonical = serde_json::to_vec(self).unwrap_or_default();
                hex::encode(Sha256::digest(&canonical))
            })
            .clone()
    }

    /// The principals a certificate for `user` carries, in order, without duplicates.
    pub fn principals_for(
        &self,
        user: &UserName,
    ) -> Result<Vec<Principal>, crate::names::InvalidName> {
        let mut out: Vec<Principal> = Vec::with_capacity(self.principals.len());
        for t in &self.principals {
            let p = t.expand(user)?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Total number of distinct approvals this role needs.
    pub fn approvals_needed(&self) -> u32 {
        self.steps.iter().map(|s| s.approvals).sum()
    }

    /// Who must approve, in words: `2 of group:dba AND 1 of (group:security, user:carol)`
    /// (every step must be met; a person counts toward one step only).
    pub fn approval_rule(&self) -> String {
        self.steps
            .iter()
            .map(|s| match s.approvers.as_slice() {
                [one] => format!("{} of {one}", s.approvals),
                _ => format!(
                    "{} of ({})",
                    s.approvals,
                    rules::describe_members(&s.approvers)
                ),
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

/// Roles no one may hold at the same time.
#[derive(Debug, Clone)]
pub struct Conflict {
    /// The roles; any two of them conflict.
    pub roles: BTreeSet<RoleName>,
    /// Why, shown in the refusal.
    pub reason: String,
}

impl Policy {
    /// The conflict, if any, between two different roles.
    pub fn conflict_between(&self, a: &RoleName, b: &RoleName) -> Option<&Conflict> {
        if a == b {
            return None;
        }
        self.conflicts
            .iter()
            .find(|c| c.roles.contains(a) && c.roles.contains(b))
    }

    /// The roles that conflict with `role` (never `role` itself), each once.
    pub fn conflicting_roles(&self, role: &RoleName) -> BTreeSet<&RoleName> {
        self.conflicts
            .iter()
            .filter(|c| c.roles.contains(role))
            .flat_map(|c| c.roles.iter())
            .filter(|r| *r != role)
            .collect()
    }

    /// The user that registered this key, if any.
    pub fn user_by_key(&self, key: &SubjectKey) -> Option<&User> {
        let owners = self.key_owners.get_or_init(|| {
            let mut owners = std::collections::HashMap::new();
            // In name order, the first user wins, as a walk would find them.
            for u in self.users.values() {
                for k in &u.ssh_keys {
                    owners.entry(k.material()).or_insert_with(|| u.name.clone());
                }
            }
            owners
        });
        owners
            .get(&key.material())
            .and_then(|name| self.users.get(name))
    }

    /// Whether `user` is admin.
    pub fn is_admin(&self, user: &UserName) -> bool {
        self.users.get(user).is_some_and(|u| u.admin)
    }
}
