//! Principals that `{user}` could turn into someone else's: checked once the roles and
//! users are known.
//!
//! A template such as `"{user}"` gives each requester a principal named after them. If a
//! user is named like a fixed principal of another role (`dba`), or like the principal a
//! template gives another user (`bob-admin` against `"{user}-admin"` for bob), that user
//! would get the other access by requesting the template's role: without its approvers
//! and around every `[[conflicts]]` entry that guards it. Such a user name is refused.

use std::collections::HashMap;

use crate::names::{RoleName, UserName};
use crate::policy::{Policy, PrincipalTemplate};

/// A principal some configured user would get that belongs to something else: the role
/// whose `principals` key the message is about, and why.
pub(super) struct Clash {
    /// The role whose template gives the principal.
    pub role: RoleName,
    /// What clashes with what, and what to do.
    pub message: String,
}

/// Checks every principal a `{user}` template gives a requester of its role. Returns the
/// warnings (a template that gives a user `root`, `ubuntu` or another system account's
/// name), or the first clash.
pub(super) fn check(policy: &Policy) -> Result<Vec<String>, Clash> {
    let people = crate::policy::People::of_policy(policy);
    // A fixed principal and the role that lists it.
    let mut fixed: HashMap<&str, &RoleName> = HashMap::new();
    for role in policy.roles.values() {
        for t in role.principals.iter().filter(|t| !t.is_template()) {
            fixed.entry(t.0.as_str()).or_insert(&role.name);
        }
    }
    // A principal some template gives, and to whom, through which role and template.
    let mut given: HashMap<String, (&UserName, &RoleName, &PrincipalTemplate)> = HashMap::new();
    let mut warnings = Vec::new();
    for role in policy.roles.values() {
        let requesters: Vec<&UserName> = policy
            .users
            .keys()
            .filter(|u| people.is_any_member(u, &role.requesters))
            .collect();
        for t in role.principals.iter().filter(|t| t.is_template()) {
            for &user in &requesters {
                // Every expansion was validated when the role was read.
                let Ok(p) = t.expand(user) else { continue };
                let p = p.as_str().to_owned();
                if let Some(&other) = fixed.get(p.as_str())
                    && other != &role.name
                {
                    return Err(Clash {
                        role: role.name.clone(),
                        message: format!(
                            "{:?} gives user {user} the principal {p}, a fixed principal of \
                             role {other}: {user} would get {other}'s access by requesting {}, \
                             without {other}'s approvers and around its conflicts; rename the \
                             user or change the principal",
                            t.0, role.name
                        ),
                    });
                }
                match given.get(&p) {
                    Some(&(owner, other_role, other_t)) if owner != user => {
                        return Err(Clash {
                            role: role.name.clone(),
                            message: format!(
                                "{:?} gives user {user} the principal {p}, which {:?} of \
                                 role {other_role} gives user {owner}: {user} would log in \
                                 where {owner} does; rename the user or change the principal",
                                t.0, other_t.0
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        given.insert(p.clone(), (user, &role.name, t));
                    }
                }
                if crate::policy::rules::SYSTEM_ACCOUNTS.contains(&p.as_str()) {
                    warnings.push(format!(
                        "roles.{}.principals: {:?} gives user {user} the principal {p}, a \
                         system account's name: a certificate for it logs in as {p} wherever \
                         {p} accepts this CA",
                        role.name, t.0
                    ));
                }
            }
        }
    }
    Ok(warnings)
}
