//! The policy half of the configuration: `[users]`, `[roles]` and `[[conflicts]]` read
//! into a [`Policy`], with the warnings an operator should see (a group nobody is in, a
//! role nobody can request or get approved, a template that gives someone `root`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::{Builder, ConfigError, principals, raw};
use crate::names::{GroupName, RoleName, Text, UserName};
use crate::policy::{Member, Policy, Role, User};
use crate::pubkey::SubjectKey;

impl Builder<'_> {
    /// Reads the users, then each role against them, then the conflicts against the
    /// roles; a `{user}` principal that clashes with another is an error of its role.
    /// Every user's, role's or conflict's error is kept ([`Builder::note`]); a level is
    /// not read when the one it builds on had any (`None`).
    pub(super) fn policy(
        &mut self,
        users: BTreeMap<String, raw::RawUser>,
        roles: BTreeMap<String, raw::RawRole>,
        conflicts: Vec<raw::RawConflict>,
    ) -> Option<Policy> {
        let users = self.users(users)?;
        let mut policy = Policy {
            users,
            roles: BTreeMap::new(),
            conflicts: Vec::new(),
            key_owners: Default::default(),
            signing: None,
        };
        let mut all_read = true;
        for (name, role) in roles {
            match self.role(&policy, &name, role) {
                Some(role) => {
                    policy.roles.insert(role.name.clone(), role);
                }
                None => all_read = false,
            }
        }
        if !all_read {
            return None;
        }
        policy.conflicts = self.conflicts(&policy, conflicts)?;
        let clashes = principals::check(&policy)
            .map_err(|c| self.err(format!("roles.{}.principals", c.role), c.message));
        let clashes = self.note(clashes)?;
        self.warnings.extend(clashes);
        let warnings = satisfiability_warnings(&policy, &self.fed);
        self.warnings.extend(warnings);
        Some(policy)
    }

    /// Every user, or `None` when any is wrong (each error kept).
    fn users(&mut self, raw: BTreeMap<String, raw::RawUser>) -> Option<BTreeMap<UserName, User>> {
        let mut users = BTreeMap::new();
        let mut key_owner: Vec<(SubjectKey, UserName)> = Vec::new();
        let mut all_read = true;
        for (name, u) in raw {
            let user = self.user(&name, u, &mut key_owner);
            match self.note(user) {
                Some(user) => {
                    users.insert(user.name.clone(), user);
                }
                None => all_read = false,
            }
        }
        all_read.then_some(users)
    }

    /// One user; `key_owner` holds the keys of the users read before, to refuse a key
    /// listed twice.
    fn user(
        &self,
        name: &str,
        u: raw::RawUser,
        key_owner: &mut Vec<(SubjectKey, UserName)>,
    ) -> Result<User, ConfigError> {
        let key = format!("users.{name}");
        let name = UserName::parse(name).map_err(|e| self.err(&key, e))?;
        let mut groups = BTreeSet::new();
        for g in u.groups {
            groups.insert(GroupName::parse(&g).map_err(|e| self.err(format!("{key}.groups"), e))?);
        }
        let mut ssh_keys = Vec::new();
        let mut key_comments = BTreeMap::new();
        for (i, line) in u.ssh_keys.iter().enumerate() {
            let k =
                SubjectKey::parse(line).map_err(|e| self.err(format!("{key}.ssh_keys[{i}]"), e))?;
            if let Some((_, owner)) = key_owner.iter().find(|(o, _)| o.material() == k.material()) {
                return Err(self.err(
                    format!("{key}.ssh_keys[{i}]"),
                    if *owner == name {
                        format!("key {} is listed twice", k.fingerprint())
                    } else {
                        format!(
                            "key {} is already registered to user {owner}",
                            k.fingerprint()
                        )
                    },
                ));
            }
            key_owner.push((k.clone(), name.clone()));
            let comment = crate::pubkey::plain_comment(line);
            if !comment.is_empty() {
                key_comments.insert(k.fingerprint(), comment);
            }
            ssh_keys.push(k);
        }
        let oidc_subject = match u.oidc_subject {
            Some(s) if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) => {
                return Err(self.err(
                    format!("{key}.oidc_subject"),
                    "must be the person's subject (`sub`) at the identity provider",
                ));
            }
            other => other,
        };
        if u.bot && u.admin {
            return Err(self.err(
                format!("{key}.bot"),
                "a service account (bot = true) is never an admin",
            ));
        }
        if u.bot && oidc_subject.is_some() {
            return Err(self.err(
                format!("{key}.bot"),
                "a service account (bot = true) is no person of the identity provider: \
                 drop oidc_subject",
            ));
        }
        Ok(User {
            name,
            groups,
            admin: u.admin,
            ssh_keys,
            key_comments,
            oidc_subject,
            bot: u.bot,
        })
    }

    pub(super) fn members(
        &mut self,
        policy: &Policy,
        key: &str,
        raw: &[String],
    ) -> Result<Vec<Member>, ConfigError> {
        if raw.is_empty() {
            return Err(self.err(key, "must name at least one group:NAME or user:NAME"));
        }
        let mut out = Vec::new();
        for m in raw {
            let member = match m.split_once(':') {
                Some(("group", g)) => {
                    Member::Group(GroupName::parse(g).map_err(|e| self.err(key, e))?)
                }
                Some(("user", u)) => {
                    Member::User(UserName::parse(u).map_err(|e| self.err(key, e))?)
                }
                _ => return Err(self.err(key, format!("{m:?} must be group:NAME or user:NAME"))),
            };
            match &member {
                Member::User(u) if !policy.users.contains_key(u) => {
                    return Err(self.err(key, format!("user {u} is not defined in [users]")));
                }
                Member::Group(g)
                    if !self.fed.contains(g)
                        && !policy.users.values().any(|u| u.groups.contains(g)) =>
                {
                    self.warnings
                        .push(format!("{key}: group {g} has no members"));
                }
                _ => {}
            }
            if !out.contains(&member) {
                out.push(member);
            }
        }
        Ok(out)
    }

    /// One role, each of its keys checked (errors kept: [`Builder::note`]); `None` when
    /// any is wrong (a key that builds on a wrong one, as `default_ttl` on `max_ttl`, is
    /// not checked).
    fn role(&mut self, policy: &Policy, name: &str, raw: raw::RawRole) -> Option<Role> {
        let key = format!("roles.{name}");
        let name = RoleName::parse(name).map_err(|e| self.err(&key, e));
        let name = self.note(name);
        let principals = raw::principals(policy, &raw.principals)
            .map_err(|e| self.err(format!("{key}.principals"), e));
        let principals = self.note(principals);
        let requesters = self.members(policy, &format!("{key}.requesters"), &raw.requesters);
        let requesters = self.note(requesters);
        let steps = self.steps(policy, &key, &raw);
        let steps = self.note(steps);
        let max_ttl = self.duration(&format!("{key}.max_ttl"), raw.max_ttl.as_deref(), "2h");
        let max_ttl = self.note(max_ttl);
        let default_ttl = max_ttl.and_then(|max_ttl| {
            let default_ttl = match raw.default_ttl.as_deref() {
                Some(d) => self.duration(&format!("{key}.default_ttl"), Some(d), ""),
                None => Ok(max_ttl.min(Duration::from_secs(30 * 60))),
            };
            let default_ttl = default_ttl.and_then(|d| {
                if d > max_ttl {
                    Err(self.err(format!("{key}.default_ttl"), "must not exceed max_ttl"))
                } else {
                    Ok(d)
                }
            });
            self.note(default_ttl)
        });
        let extensions =
            raw::extensions(raw.extensions).map_err(|e| self.err(format!("{key}.extensions"), e));
        let extensions = self.note(extensions);
        let force_command = raw::force_command(raw.force_command)
            .map_err(|e| self.err(format!("{key}.force_command"), e));
        let force_command = self.note(force_command);
        let source_address = raw::source_address(raw.source_address)
            .map_err(|e| self.err(format!("{key}.source_address"), e));
        let source_address = self.note(source_address);
        let break_glass = match (raw.break_glass, max_ttl) {
            (Some(b), Some(max_ttl)) => {
                let table = self.break_glass(policy, &key, b, max_ttl);
                Some(Some(self.note(table)?))
            }
            (Some(_), None) => None,
            (None, _) => Some(None),
        };
        Some(Role {
            name: name?,
            principals: principals?,
            requesters: requesters?,
            steps: steps?,
            default_ttl: default_ttl?,
            max_ttl: max_ttl?,
            extensions: extensions?,
            force_command: force_command?,
            source_address: source_address?,
            break_glass: break_glass?,
            cached_digest: Default::default(),
        })
    }

    fn steps(
        &mut self,
        policy: &Policy,
        key: &str,
        raw: &raw::RawRole,
    ) -> Result<Vec<crate::policy::Step>, ConfigError> {
        let single = raw.approvers.is_some() || raw.approvals.is_some();
        let raw_steps: Vec<(String, &[String], u32)> = match (&raw.approval_steps, single) {
            (Some(_), true) => {
                return Err(self.err(
                    key,
                    "approval_steps and approvers/approvals are exclusive: use one or the other",
                ));
            }
            (Some(steps), false) if steps.is_empty() => {
                return Err(self.err(format!("{key}.approval_steps"), "must not be empty"));
            }
            (Some(steps), false) => steps
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    (
                        format!("{key}.approval_steps[{i}]"),
                        s.approvers.as_slice(),
                        s.approvals.unwrap_or(1),
                    )
                })
                .collect(),
            (None, _) => {
                let approvers = raw.approvers.as_deref().unwrap_or_default();
                vec![(
                    format!("{key}.approvers"),
                    approvers,
                    raw.approvals.unwrap_or(1),
                )]
            }
        };
        let mut steps = Vec::new();
        for (k, approvers, approvals) in raw_steps {
            if approvals == 0 || approvals > 100 {
                // Named by the key that is wrong (`roles.x.approvals`, or a step's).
                let at = match k.strip_suffix(".approvers") {
                    Some(role) => format!("{role}.approvals"),
                    None => format!("{k}.approvals"),
                };
                return Err(self.err(&at, "must be between 1 and 100"));
            }
            let approvers = self.members(policy, &k, approvers)?;
            steps.push(crate::policy::Step {
                approvers,
                approvals,
            });
        }
        Ok(steps)
    }

    /// Every conflict, or `None` when any is wrong (each error kept).
    fn conflicts(
        &mut self,
        policy: &Policy,
        raw: Vec<raw::RawConflict>,
    ) -> Option<Vec<crate::policy::Conflict>> {
        let mut out = Vec::new();
        let mut all_read = true;
        for (i, c) in raw.into_iter().enumerate() {
            let conflict = self.conflict(policy, i, c);
            match self.note(conflict) {
                Some(c) => out.push(c),
                None => all_read = false,
            }
        }
        all_read.then_some(out)
    }

    /// The `i`th conflict.
    fn conflict(
        &self,
        policy: &Policy,
        i: usize,
        c: raw::RawConflict,
    ) -> Result<crate::policy::Conflict, ConfigError> {
        let key = format!("conflicts[{i}]");
        let mut roles = BTreeSet::new();
        for r in &c.roles {
            let name = RoleName::parse(r).map_err(|e| self.err(format!("{key}.roles"), e))?;
            if !policy.roles.contains_key(&name) {
                return Err(self.err(
                    format!("{key}.roles"),
                    format!("role {name} is not defined in [roles]"),
                ));
            }
            roles.insert(name);
        }
        if roles.len() < 2 {
            return Err(self.err(
                format!("{key}.roles"),
                "a conflict names at least two different roles",
            ));
        }
        let reason =
            Text::parse(&c.reason, "reason").map_err(|e| self.err(format!("{key}.reason"), e))?;
        Ok(crate::policy::Conflict {
            roles,
            reason: reason.as_str().to_owned(),
        })
    }
}

/// Warns about every role that some eligible requester could never get approved, because
/// too few distinct people other than that requester can approve.
fn satisfiability_warnings(policy: &Policy, fed: &BTreeSet<GroupName>) -> Vec<String> {
    let people = crate::policy::People::of_policy(policy);
    let mut warnings = Vec::new();
    for role in policy.roles.values() {
        // Who the provider puts in a group is known only at sign-in.
        let names_fed = |members: &[Member]| {
            members
                .iter()
                .any(|m| matches!(m, Member::Group(g) if fed.contains(g)))
        };
        if names_fed(&role.requesters) || role.steps.iter().any(|s| names_fed(&s.approvers)) {
            continue;
        }
        let requesters: Vec<&UserName> = policy
            .users
            .keys()
            .filter(|u| people.is_any_member(u, &role.requesters))
            .collect();
        if requesters.is_empty() {
            warnings.push(format!("roles.{}: nobody can request this role", role.name));
        }
        // Whether a role can be approved for a requester depends on the requester only
        // through the steps they could approve themselves (they are left out of the
        // pool): requesters with the same steps face the same pool up to who is who, so
        // one check per distinct set of steps answers for all of them. This keeps
        // loading a policy of hundreds of users and tens of roles fast.
        let mut checked: std::collections::HashMap<Vec<bool>, Result<(), usize>> =
            std::collections::HashMap::new();
        for r in requesters {
            let steps: Vec<bool> = role
                .steps
                .iter()
                .map(|s| people.is_any_member(r, &s.approvers))
                .collect();
            let outcome = *checked
                .entry(steps)
                .or_insert_with(|| crate::policy::rules::satisfiable(policy, role, r));
            if let Err(step) = outcome {
                let needed = &role.steps[step];
                warnings.push(format!(
                    "roles.{}: a request by {r} can never be approved: step {} needs {} \
                     distinct approvers other than {r} from {}",
                    role.name,
                    step + 1,
                    needed.approvals,
                    crate::policy::rules::describe_members(&needed.approvers)
                ));
                break;
            }
        }
    }
    warnings
}
