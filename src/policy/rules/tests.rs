//! Tests of the approval rules: the helpers and the one policy fixture here ([`USERS`] and
//! [`ROLES`], loaded through the config), one file per rule family in `tests/`.

use super::*;
use crate::policy::People;

use std::path::Path;

use crate::names::GroupName;

mod approvals;
mod conflicts;
mod idp;
mod keys;
mod properties;
mod requests;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The policy of a TOML config; panics with the loader's message if it does not load.
fn policy(text: &str) -> Policy {
    match crate::config::Config::from_toml_str(text, Path::new("test.toml"), Path::new("/tmp")) {
        Ok(c) => c.policy,
        Err(e) => panic!("test policy does not load: {e}"),
    }
}

fn u(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

fn r(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}

fn users(names: &[&str]) -> Vec<UserName> {
    names.iter().map(|n| u(n)).collect()
}

fn role_of<'p>(p: &'p Policy, name: &str) -> &'p Role {
    p.roles
        .get(&r(name))
        .unwrap_or_else(|| panic!("no role {name}"))
}

/// The users in the groups their names suggest:
/// alice dev; bob dba (admin); carol dba+security; dave dba; erin security; frank sre.
const USERS: &str = r#"
[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]
admin = true

[users.carol]
groups = ["dba", "security"]

[users.dave]
groups = ["dba"]

[users.erin]
groups = ["security"]

[users.frank]
groups = ["sre"]
"#;

const ROLES: &str = r#"
[roles.prod-db]
principals = ["dba", "{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 1
default_ttl = "30m"
max_ttl = "2h"

[roles.prod-db-pair]
principals = ["dba"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 2

[roles.self-serve]
principals = ["ops"]
requesters = ["group:dev", "group:dba"]
approvers = ["group:dev", "group:dba"]

[roles.deploy]
principals = ["deploy"]
requesters = ["group:dev", "group:sre"]
approvers = ["group:sre", "group:dba"]
default_ttl = "15m"
max_ttl = "1h"

[roles.deploy-audit]
principals = ["deploy-audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]

[roles.audit-two]
principals = ["audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 2 },
]

[[conflicts]]
roles = ["deploy", "deploy-audit"]
reason = "whoever deploys must not also rewrite the deploy audit trail"
"#;

fn standard() -> Policy {
    policy(&format!("{USERS}{ROLES}"))
}

/// Simulates the service's approve loop with the pure functions only: each approver in
/// turn, accepted ones appended. Returns the accepted approvers and every result.
fn approve_all(
    p: &Policy,
    role: &Role,
    requester: &UserName,
    sequence: &[UserName],
) -> (Vec<UserName>, Vec<Result<(), Refusal>>) {
    let mut approved = Vec::new();
    let mut results = Vec::new();
    for a in sequence {
        let res = approver_may_approve(&People::of_policy(p), role, requester, a, &approved);
        if res.is_ok() {
            approved.push(a.clone());
        }
        results.push(res);
    }
    (approved, results)
}
