//! Tests of loading a config: the helpers and fixtures here, the cases by theme in
//! `tests/`. Most cases are a table of configs, each refused with a message that must
//! name the key (or accepted with a value), built from the one base policy [`BASE`].

use super::*;

use crate::names::{GroupName, Principal, RoleName, UserName};
use crate::policy::Member;

mod approvals;
mod break_glass;
mod conflicts;
mod digest;
mod host_ca;
mod loading;
mod names;
mod policy_signing;
mod roles;
mod settings;
mod several;
mod templates;
mod unknown_keys;

// ---------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str(text, Path::new("test.toml"), Path::new("/tmp"))
}

fn ok(text: &str) -> Config {
    match load(text) {
        Ok(c) => c,
        Err(e) => panic!("config does not load: {e}\n---\n{text}"),
    }
}

/// The loader's message for a config that must not load.
fn err(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("config loaded but should not:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `text` is refused with a message containing every one of `needles`.
#[track_caller]
fn refused(text: &str, needles: &[&str]) {
    let msg = err(text);
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}\n---\n{text}");
    }
}

/// Asserts that every config of the table is refused with a message containing every one
/// of its needles.
#[track_caller]
fn refused_all<T: AsRef<str>>(cases: &[(T, &[&str])]) {
    for (text, needles) in cases {
        refused(text.as_ref(), needles);
    }
}

fn u(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

fn r(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}

/// Whether some warning contains every one of `needles`.
fn warned(c: &Config, needles: &[&str]) -> bool {
    c.warnings
        .iter()
        .any(|w| needles.iter().all(|n| w.contains(n)))
}

// ---------------------------------------------------------------------------------------
// The base policy
// ---------------------------------------------------------------------------------------

/// The shared base policy: two users and one role `x` that alice (group dev) may request
/// and bob (group dba) approves. The cases change one line of it.
const BASE: &str = r#"
[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]

[roles.x]
principals = ["x"]
requesters = ["group:dev"]
approvers = ["group:dba"]
"#;

/// [`BASE`] with one more line in role `x`.
fn with_role_line(line: &str) -> String {
    format!("{BASE}{line}\n")
}

/// [`BASE`] with role `x`'s `principals` chosen by the test.
fn with_principals(principals: &str) -> String {
    BASE.replace(
        "principals = [\"x\"]",
        &format!("principals = {principals}"),
    )
}

/// [`BASE`] with one of role `x`'s lines replaced.
fn with_role_edit(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    with_role_line("").replace(from, to)
}

/// The shape of config/countersign.toml: every section, steps, options and a conflict.
const FULL: &str = r#"
[server]
listen = "127.0.0.1:7070"
data_dir = "data"

[ca]
key_file = "ca_key"
backdate = "1m"

[requests]
pending_ttl = "1h"

[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]
admin = true

[users.carol]
groups = ["dba", "security"]

[users.dave]
groups = ["sre"]

[users.erin]
groups = ["security"]

[roles.prod-db]
principals = ["dba", "{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 1
default_ttl = "30m"
max_ttl = "2h"
extensions = ["permit-pty"]

[roles.deploy]
principals = ["deploy"]
requesters = ["group:dev", "group:sre"]
approvers = ["group:sre", "group:dba"]
approvals = 1
default_ttl = "15m"
max_ttl = "1h"
extensions = ["permit-pty", "permit-port-forwarding"]

[roles.deploy-audit]
principals = ["deploy-audit"]
requesters = ["group:dev", "group:security"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]
max_ttl = "1h"
force_command = "/usr/bin/journalctl -u deploy --no-pager"
source_address = ["127.0.0.0/8"]

[[conflicts]]
roles = ["deploy", "deploy-audit"]
reason = "whoever deploys must not also be able to rewrite the deploy audit trail"
"#;

/// [`FULL`] with one piece of text replaced.
fn full_edit(from: &str, to: &str) -> String {
    assert!(FULL.contains(from), "{from}");
    FULL.replace(from, to)
}
