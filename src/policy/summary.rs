//! The policy as the audit log records it (`policy.loaded`): a canonical JSON form, its
//! digest, and what changed against the previous one. From these events an auditor can
//! answer "who could approve prod-db on the 3rd?" without the config files of that day.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::Policy;

/// The policy as canonical JSON: users (groups, admin, fingerprints of registered keys),
/// groups (members), roles (their whole definition), conflicts and `[policy]` (the
/// signers). Object keys are sorted (serde_json's map), lists are in a fixed order, so
/// equal policies give equal text.
pub fn summary(policy: &Policy) -> Value {
    let mut users = Map::new();
    let mut groups: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for user in policy.users.values() {
        let keys: BTreeSet<String> = user.ssh_keys.iter().map(|k| k.fingerprint()).collect();
        let mut entry = json!({ "groups": user.groups, "admin": user.admin, "ssh_keys": keys });
        // Only when set, so that a policy recorded before service accounts keeps its digest.
        if user.bot {
            entry["bot"] = json!(true);
        }
        users.insert(user.name.to_string(), entry);
        for g in &user.groups {
            groups
                .entry(g.to_string())
                .or_default()
                .insert(user.name.to_string());
        }
    }
    let roles: Map<String, Value> = policy
        .roles
        .values()
        .map(|r| {
            // A role serialises to plain data; that cannot fail.
            let mut value = serde_json::to_value(r).unwrap_or(Value::Null);
            // Break-glass is out of the role's digest (pending requests stay good), but
            // who may skip approval is policy: recorded here, when set.
            if let Some(bg) = &r.break_glass {
                value["break_glass"] = json!({
                    "invokers": bg.invokers,
                    "max_ttl": bg.max_ttl.as_secs(),
                    "reason_pattern": bg.reason_pattern.as_ref().map(|p| p.source.clone()),
                    "reviewers": bg.reviewers,
                    "reviews": bg.reviews,
                    "review_within": bg.review_within.as_secs(),
                });
            }
            (r.name.to_string(), value)
        })
        .collect();
    let conflicts: BTreeSet<(Vec<String>, String)> = policy
        .conflicts
        .iter()
        .map(|c| {
            (
                c.roles.iter().map(ToString::to_string).collect(),
                c.reason.clone(),
            )
        })
        .collect();
    let conflicts: Vec<Value> = conflicts
        .into_iter()
        .map(|(roles, reason)| json!({ "roles": roles, "reason": reason }))
        .collect();
    let mut out =
        json!({ "users": users, "groups": groups, "roles": roles, "conflicts": conflicts });
    // Only when set, so that an unsigned policy keeps the digest it was recorded with.
    if let Some(signing) = &policy.signing {
        out["policy"] = json!(signing);
    }
    out
}

/// SHA-256 of the summary's canonical text, hex.
pub fn digest(summary: &Value) -> String {
    text_digest(&summary.to_string())
}

/// [`digest`] of a summary kept as its canonical text (`meta.policy`): the digest
/// `meta.policy_digest` holds, which PostgreSQL's migration computes the same way.
pub fn text_digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What changed from `old` to `new` (both [`summary`] values; `old` `None` for the first
/// policy recorded): names added, removed and changed per section, and for roles whose
/// approval steps changed, the approvers before and after.
pub fn changes(old: Option<&Value>, new: &Value) -> Value {
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let mut out = Map::new();
    for section in ["users", "groups", "roles"] {
        let diff = diff_maps(old.get(section), new.get(section));
        if !diff.is_empty() {
            out.insert(section.into(), Value::Object(diff));
        }
    }
    if old.get("settings") != new.get("settings") && new.get("settings").is_some() {
        out.insert(
            "settings".into(),
            json!({ "before": old.get("settings"), "after": new.get("settings") }),
        );
    }
    let mut approvers = Map::new();
    if let (Some(Value::Object(before)), Some(Value::Object(after))) =
        (old.get("roles"), new.get("roles"))
    {
        for (name, role) in after {
            let (was, is) = (
                before.get(name).and_then(|r| r.get("steps")),
                role.get("steps"),
            );
            if was.is_some() && was != is {
                approvers.insert(name.clone(), json!({ "before": was, "after": is }));
            }
        }
    }
    if !approvers.is_empty() {
        out.insert("approvers".into(), Value::Object(approvers));
    }
    let as_set = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().map(Value::to_string).collect())
            .unwrap_or_default()
    };
    let (was, is) = (as_set(old.get("conflicts")), as_set(new.get("conflicts")));
    let parse = |s: &String| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let added: Vec<Value> = is.difference(&was).map(parse).collect();
    let removed: Vec<Value> = was.difference(&is).map(parse).collect();
    if !added.is_empty() || !removed.is_empty() {
        out.insert(
            "conflicts".into(),
            json!({ "added": added, "removed": removed }),
        );
    }
    // `[policy]`: who signs, how many, the version; before and after when it changed.
    let (was, is) = (old.get("policy"), new.get("policy"));
    if was != is {
        out.insert("policy".into(), json!({ "before": was, "after": is }));
    }
    Value::Object(out)
}

/// `{"added": [...], "removed": [...], "changed": [...]}` of two JSON objects' keys,
/// leaving out the empty lists.
fn diff_maps(old: Option<&Value>, new: Option<&Value>) -> Map<String, Value> {
    let empty = Map::new();
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let new = new.and_then(Value::as_object).unwrap_or(&empty);
    let added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
    let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    let changed: Vec<&String> = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o != *v))
        .map(|(k, _)| k)
        .collect();
    let mut out = Map::new();
    for (name, list) in [("added", added), ("removed", removed), ("changed", changed)] {
        if !list.is_empty() {
            out.insert(name.into(), json!(list));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn policy(extra: &str) -> Policy {
        policy_approved_by("group:dba", extra)
    }

    fn policy_approved_by(prod_db_approvers: &str, extra: &str) -> Policy {
        let text = format!(
            r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[users.carol]
groups = ["dba"]
[roles.prod-db]
principals = ["postgres"]
requesters = ["group:dev"]
approvers = ["{prod_db_approvers}"]
[roles.ops]
principals = ["ops"]
requesters = ["group:dba"]
approvers = ["user:carol"]
{extra}
"#
        );
        Config::from_toml_str(
            &text,
            std::path::Path::new("t.toml"),
            std::path::Path::new("."),
        )
        .unwrap()
        .policy
    }

    #[test]
    fn equal_policies_have_equal_digests_and_no_changes() {
        let (a, b) = (summary(&policy("")), summary(&policy("")));
        assert_eq!(digest(&a), digest(&b));
        assert_eq!(changes(Some(&a), &b), json!({}));
    }

    #[test]
    fn changes_name_what_was_added_removed_and_who_approves_now() {
        let old = summary(&policy(""));
        let new = summary(&policy(
            r#"[users.dave]
groups = ["dba"]
[[conflicts]]
roles = ["prod-db", "ops"]
reason = "no"
"#,
        ));
        assert_ne!(digest(&old), digest(&new));
        let c = changes(Some(&old), &new);
        assert_eq!(c["users"]["added"], json!(["dave"]));
        assert_eq!(c["groups"]["changed"], json!(["dba"]));
        assert_eq!(
            c["conflicts"]["added"][0]["roles"],
            json!(["ops", "prod-db"])
        );
        assert!(c.get("roles").is_none(), "{c}");

        let first = changes(None, &old);
        assert_eq!(first["roles"]["added"], json!(["ops", "prod-db"]));
    }

    #[test]
    fn a_changed_approver_list_is_shown_before_and_after() {
        let old = summary(&policy(""));
        let new = policy_approved_by("user:bob", "");
        let c = changes(Some(&old), &summary(&new));
        assert_eq!(c["roles"]["changed"], json!(["prod-db"]));
        assert_eq!(
            c["approvers"]["prod-db"]["after"][0]["approvers"],
            json!(["user:bob"])
        );
        assert_eq!(
            c["approvers"]["prod-db"]["before"][0]["approvers"],
            json!(["group:dba"])
        );
    }
}
