//! A config with several mistakes is refused naming every one, so that an operator fixes
//! them in one go (not one `check-config` or `reload` per mistake).

use super::*;

/// The keys `text`'s errors name, in order, and the whole message (several errors).
fn several(text: &str) -> (Vec<String>, String) {
    let e = load(text).expect_err("refused");
    let ConfigError::Several { errors, .. } = &e else {
        panic!("one error only: {e}");
    };
    (
        errors.iter().map(|(k, _)| k.clone()).collect(),
        e.to_string(),
    )
}

#[test]
fn every_independent_mistake_is_named_at_once() {
    let text = format!(
        "[server]\nlog_format = \"yaml\"\n[requests]\npending_ttl = \"forever\"\n{}",
        BASE.replace(
            "principals = [\"x\"]",
            "principals = [\"x\"]\nmax_ttl = \"0s\""
        ) + "\n[roles.y]\nprincipals = [\"y\"]\nrequesters = [\"group:dev\"]\n\
               approvers = [\"group:dba\"]\napprovals = 0\n"
    );
    let (keys, message) = several(&text);
    assert_eq!(
        keys,
        [
            "server.log_format",
            "requests.pending_ttl",
            "roles.x.max_ttl",
            "roles.y.approvals"
        ],
        "{message}"
    );
    assert!(message.starts_with("config test.toml: 4 errors:\n  server.log_format: "));
    assert_eq!(message.lines().count(), 5, "{message}");
}

#[test]
fn a_level_that_builds_on_a_broken_one_is_not_read() {
    // The roles name users; with a user wrong, the roles are not checked (each would
    // only repeat it), and the one mistake is the plain error it always was.
    let text = BASE.replace("[users.bob]", "[users.\"Bob Smith\"]")
        + "[roles.y]\nprincipals = [\"y\"]\nrequesters = [\"group:dev\"]\napprovers = []\n";
    let e = load(&text).expect_err("refused");
    assert!(
        matches!(&e, ConfigError::Invalid { key, .. } if key == "users.Bob Smith"),
        "{e}"
    );
    // Two conflicts wrong: both named.
    let text = format!(
        "{BASE}[[conflicts]]\nroles = [\"x\"]\nreason = \"r\"\n\
         [[conflicts]]\nroles = [\"x\", \"nope\"]\nreason = \"r\"\n"
    );
    refused(
        &text,
        &["2 errors", "conflicts[0].roles", "conflicts[1].roles"],
    );
}

#[test]
fn server_requests_and_a_role_name_each_wrong_key() {
    let text = format!(
        "[server]\nlisten = \"nowhere\"\nlog_format = \"yaml\"\nshutdown_delay = \"1h\"\n\
         [requests]\npending_ttl = \"0s\"\nmax_pending_per_user = 0\n{}",
        BASE.replace(
            "principals = [\"x\"]",
            "principals = []\nmax_ttl = \"1h\"\ndefault_ttl = \"2h\"\nextensions = [\"nope\"]"
        )
    );
    let (keys, message) = several(&text);
    assert_eq!(
        keys,
        [
            "server.listen",
            "server.log_format",
            "server.shutdown_delay",
            "requests.pending_ttl",
            "requests.max_pending_per_user",
            "roles.x.principals",
            "roles.x.default_ttl",
            "roles.x.extensions",
        ],
        "{message}"
    );
}
