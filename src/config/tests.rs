use super::*;

use crate::names::{GroupName, Principal, RoleName, UserName};
use crate::policy::Member;

// ---------------------------------------------------------------------------------------
// Helpers
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
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
}

fn u(s: &str) -> UserName {
    UserName::parse(s).unwrap()
}

fn r(s: &str) -> RoleName {
    RoleName::parse(s).unwrap()
}

/// Two users and a role with one line left for the test to fill in.
fn with_role_line(line: &str) -> String {
    format!(
        r#"
[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]

[roles.x]
principals = ["x"]
requesters = ["group:dev"]
approvers = ["group:dba"]
{line}
"#
    )
}

/// Two users and a role whose `principals` the test chooses.
fn with_principals(principals: &str) -> String {
    format!(
        r#"
[users.alice]
groups = ["dev"]

[users.bob]
groups = ["dba"]

[roles.x]
principals = {principals}
requesters = ["group:dev"]
approvers = ["group:dba"]
"#
    )
}

/// A fresh Ed25519 public key line, from ssh-keygen.
fn ssh_keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    std::fs::read_to_string(path.with_extension("pub"))
        .unwrap()
        .trim()
        .to_owned()
}

/// The shape of config/countersign.toml.
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

// ---------------------------------------------------------------------------------------
// A good config
// ---------------------------------------------------------------------------------------

#[test]
fn good_full_config_loads() {
    let c = ok(FULL);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.path, Path::new("test.toml"));
    assert_eq!(c.server.listen, "127.0.0.1:7070".parse().unwrap());
    assert_eq!(c.server.data_dir, Path::new("/tmp/data"));
    assert_eq!(c.database_path(), Path::new("/tmp/data/countersign.db"));
    assert_eq!(c.ca.key_file, Path::new("/tmp/data/ca_key"));
    assert_eq!(c.ca.backdate, Duration::from_secs(60));
    assert_eq!(c.requests.pending_ttl, Duration::from_secs(3600));

    let p = &c.policy;
    assert_eq!(p.users.len(), 5);
    assert!(p.is_admin(&u("bob")));
    assert!(!p.is_admin(&u("carol")));
    assert_eq!(p.users[&u("carol")].groups.len(), 2);
    assert_eq!(p.roles.len(), 3);

    let prod = &p.roles[&r("prod-db")];
    assert_eq!(prod.default_ttl, Duration::from_secs(1800));
    assert_eq!(prod.max_ttl, Duration::from_secs(7200));
    assert_eq!(prod.steps.len(), 1);
    assert_eq!(prod.steps[0].approvals, 1);
    assert_eq!(
        prod.requesters,
        vec![Member::Group(GroupName::parse("dev").unwrap())]
    );
    assert_eq!(
        prod.extensions.iter().collect::<Vec<_>>(),
        vec!["permit-pty"]
    );

    let audit = &p.roles[&r("deploy-audit")];
    assert_eq!(audit.steps.len(), 2);
    assert_eq!(audit.approvals_needed(), 2);
    // default_ttl defaults to the smaller of max_ttl and 30m.
    assert_eq!(audit.default_ttl, Duration::from_secs(1800));
    assert_eq!(
        audit.force_command.as_deref(),
        Some("/usr/bin/journalctl -u deploy --no-pager")
    );
    assert_eq!(
        audit.source_address,
        vec!["127.0.0.0/8".parse::<ipnet::IpNet>().unwrap()]
    );

    assert_eq!(p.conflicts.len(), 1);
    assert!(
        p.conflict_between(&r("deploy"), &r("deploy-audit"))
            .is_some()
    );
}

#[test]
fn shipped_example_config_loads_without_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/countersign.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.server.data_dir,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/data")
    );
}

#[test]
fn omitted_settings_take_their_defaults() {
    let c = ok(r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[roles.x]
principals = ["x"]
requesters = ["group:dev"]
approvers = ["group:dba"]
max_ttl = "10m"
"#);
    assert_eq!(c.server.listen, "127.0.0.1:7070".parse().unwrap());
    assert_eq!(c.server.data_dir, Path::new("/tmp/data"));
    assert_eq!(c.ca.key_file, Path::new("/tmp/data/ca_key"));
    assert_eq!(c.ca.backdate, Duration::from_secs(60));
    assert_eq!(c.requests.pending_ttl, Duration::from_secs(3600));
    let x = &c.policy.roles[&r("x")];
    assert_eq!(x.steps[0].approvals, 1);
    assert_eq!(x.max_ttl, Duration::from_secs(600));
    // Never longer than max_ttl.
    assert_eq!(x.default_ttl, Duration::from_secs(600));
    assert_eq!(x.extensions.iter().collect::<Vec<_>>(), vec!["permit-pty"]);
    assert!(x.force_command.is_none());
    assert!(x.source_address.is_empty());

    let y = ok(&with_role_line(""));
    let x = &y.policy.roles[&r("x")];
    assert_eq!(x.max_ttl, Duration::from_secs(7200));
    assert_eq!(x.default_ttl, Duration::from_secs(1800));
}

#[test]
fn backdate_zero_is_allowed_and_over_an_hour_is_not() {
    let c = ok("[ca]\nbackdate = \"0s\"\n");
    assert_eq!(c.ca.backdate, Duration::ZERO);
    let c = ok("[ca]\nbackdate = \"0\"\n");
    assert_eq!(c.ca.backdate, Duration::ZERO);
    refused("[ca]\nbackdate = \"2h\"\n", &["ca.backdate"]);
    refused("[ca]\nbackdate = \"soon\"\n", &["ca.backdate"]);
}

#[test]
fn revocation_grace_defaults_to_two_minutes_may_be_zero_and_at_most_a_day() {
    assert_eq!(ok("").requests.revocation_grace, Duration::from_secs(120));
    let grace = |v: &str| {
        ok(&format!("[requests]\nrevocation_grace = \"{v}\"\n"))
            .requests
            .revocation_grace
    };
    assert_eq!(grace("0s"), Duration::ZERO);
    assert_eq!(grace("1d"), Duration::from_secs(86_400));
    refused(
        "[requests]\nrevocation_grace = \"1d 1s\"\n",
        &["requests.revocation_grace", "1day"],
    );
    refused(
        "[requests]\nrevocation_grace = \"soon\"\n",
        &["requests.revocation_grace"],
    );
}

#[test]
fn server_limits_default_and_are_bounded() {
    let c = ok("");
    assert_eq!(c.server.limits, Limits::default());
    assert_eq!(c.server.limits.request_timeout, Duration::from_secs(30));
    let c = ok(
        "[server]\nmax_header_bytes = 4096\nrequest_timeout = \"5s\"\nmax_concurrent_requests = 8\nauth_failures_per_token = 3\nauth_failure_window = \"1m\"\n",
    );
    let l = &c.server.limits;
    assert_eq!(l.max_header_bytes, 4096);
    assert_eq!(l.request_timeout, Duration::from_secs(5));
    assert_eq!(l.max_concurrent_requests, 8);
    assert_eq!(l.auth_failures_per_token, 3);
    assert_eq!(l.auth_failure_window, Duration::from_secs(60));
    refused(
        "[server]\nmax_header_bytes = 10\n",
        &["server.max_header_bytes"],
    );
    refused(
        "[server]\nrequest_timeout = \"1h\"\n",
        &["server.request_timeout"],
    );
    refused(
        "[server]\nmax_connections = 0\n",
        &["server.max_connections"],
    );
    refused(
        "[server]\nmax_connections_per_address = 0\n",
        &["server.max_connections_per_address"],
    );
    assert_eq!(
        ok("[server]\nmax_connections_per_address = 8\n")
            .server
            .limits
            .max_connections_per_address,
        8
    );
    refused(
        "[server]\nauth_failures_per_address = 0\n",
        &["server.auth_failures_per_address"],
    );
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    assert!(ok("").server.limits.trusted_proxies.is_empty());
    let c = ok(
        "[server]\ntrusted_proxies = [\"10.0.0.5\", \"10.1.0.0/16\", \"::1\", \"2001:db8::/64\"]\n",
    );
    let nets: Vec<String> = c
        .server
        .limits
        .trusted_proxies
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        nets,
        ["10.0.0.5/32", "10.1.0.0/16", "::1/128", "2001:db8::/64"]
    );
    refused(
        "[server]\ntrusted_proxies = [\"proxy.example.com\"]\n",
        &["server.trusted_proxies", "proxy.example.com"],
    );
    refused(
        "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n",
        &["server.trusted_proxies"],
    );
    // One host with its netmask would trust its whole network; all addresses, everyone.
    refused(
        "[server]\ntrusted_proxies = [\"10.0.0.5/24\"]\n",
        &["server.trusted_proxies", "host bits", "10.0.0.0/24"],
    );
    for everything in ["0.0.0.0/0", "::/0"] {
        refused(
            &format!("[server]\ntrusted_proxies = [\"{everything}\"]\n"),
            &["server.trusted_proxies", "every address"],
        );
    }
}

#[test]
fn trusted_proxies_wider_than_a_slash_8_or_a_slash_32_are_refused() {
    for (too_wide, limit) in [
        ("0.0.0.0/1", "/8"),
        ("10.0.0.0/7", "/8"),
        ("2000::/3", "/32"),
        ("2001:db8::/31", "/32"),
    ] {
        refused(
            &format!("[server]\ntrusted_proxies = [\"{too_wide}\"]\n"),
            &["server.trusted_proxies", too_wide, limit],
        );
    }
    let c = ok("[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n");
    assert_eq!(c.server.limits.trusted_proxies.len(), 2);
    // source_address shares the parser but not the limit: a role may span any network.
    let c = ok(&with_role_line(
        "source_address = [\"0.0.0.0/1\", \"2000::/3\"]",
    ));
    assert_eq!(c.policy.roles[&r("x")].source_address.len(), 2);
}

#[test]
fn passphrase_file_takes_a_path_or_the_credentials_folder() {
    let c = ok("[ca]\npassphrase_file = \"${CREDENTIALS_DIRECTORY}/ca-pass\"\n");
    assert_eq!(
        c.ca.passphrase_file,
        Some(CredentialPath::Credential("ca-pass".into()))
    );
    let c = ok("[ca]\npassphrase_file = \"secrets/pass\"\n");
    assert_eq!(
        c.ca.passphrase_file,
        Some(CredentialPath::Path("/tmp/secrets/pass".into()))
    );
    refused(
        "[ca]\npassphrase_file = \"$HOME/pass\"\n",
        &["ca.passphrase_file", "CREDENTIALS_DIRECTORY"],
    );
    refused(
        "[ca]\npassphrase_file = \"${CREDENTIALS_DIRECTORY}/../x\"\n",
        &["ca.passphrase_file"],
    );
}

#[test]
fn agent_needs_its_public_key_and_excludes_a_passphrase() {
    let c = ok("[ca]\nagent = true\nagent_public_key = \"ca.pub\"\n");
    assert!(c.ca.agent);
    assert_eq!(c.ca.agent_public_key, Some("/tmp/data/ca.pub".into()));
    refused("[ca]\nagent = true\n", &["ca.agent_public_key", "required"]);
    refused(
        "[ca]\nagent = true\nagent_public_key = \"p\"\npassphrase_file = \"x\"\n",
        &["ca.passphrase_file"],
    );
    refused(
        "[ca]\nagent_public_key = \"p\"\n",
        &["ca.agent_public_key", "agent = true"],
    );
}

#[test]
fn plain_http_only_on_loopback_unless_allowed_with_a_warning() {
    let c = ok("[server]\nlisten = \"[::1]:7070\"\n");
    assert!(c.server.tls.is_none());
    refused(
        "[server]\nlisten = \"0.0.0.0:7070\"\n",
        &["server.listen", "tls_cert", "allow_plain_http"],
    );
    let c = ok("[server]\nlisten = \"0.0.0.0:7070\"\nallow_plain_http = true\n");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("plain HTTP on 0.0.0.0:7070")),
        "{:?}",
        c.warnings
    );
    let c = ok("[server]\nlisten = \"0.0.0.0:443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
    assert_eq!(
        c.server.tls,
        Some(TlsFiles {
            cert: "/tmp/c.pem".into(),
            key: "/tmp/k.pem".into()
        })
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    refused("[server]\ntls_cert = \"c.pem\"\n", &["server.tls_key"]);
    refused("[server]\ntls_key = \"k.pem\"\n", &["server.tls_cert"]);
}

#[test]
fn bad_listen_address_is_an_error() {
    refused("[server]\nlisten = \"localhost\"\n", &["server.listen"]);
}

// ---------------------------------------------------------------------------------------
// Unknown keys
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_top_level_key_is_an_error() {
    refused(
        &format!("{FULL}\n[servers]\nlisten = \"x\"\n"),
        &["servers", "unknown field"],
    );
    refused(
        &format!("colour = \"blue\"\n{FULL}"),
        &["colour", "unknown field"],
    );
}

#[test]
fn unknown_server_key_is_an_error() {
    refused(
        &FULL.replace("data_dir = \"data\"", "data_dir = \"data\"\nport = 7070"),
        &["port", "unknown field"],
    );
}

#[test]
fn unknown_ca_and_requests_keys_are_errors() {
    refused(
        &FULL.replace("backdate = \"1m\"", "backdate = \"1m\"\nalgo = \"rsa\""),
        &["algo", "unknown field"],
    );
    refused(
        &FULL.replace("pending_ttl = \"1h\"", "pending_ttl = \"1h\"\nmax = 3"),
        &["max", "unknown field"],
    );
}

#[test]
fn unknown_role_key_is_an_error() {
    // A plausible typo must not silently drop a restriction.
    refused(
        &with_role_line("source_addresses = [\"10.0.0.0/8\"]"),
        &["source_addresses", "unknown field"],
    );
    refused(
        &with_role_line("approval = 2"),
        &["approval", "unknown field"],
    );
    refused(
        &with_role_line("").replace(
            "approvers = [\"group:dba\"]",
            "approval_steps = [{ approvers = [\"group:dba\"], needs = 2 }]",
        ),
        &["needs", "unknown field"],
    );
}

#[test]
fn unknown_user_key_is_an_error() {
    refused(
        &FULL.replace("admin = true", "admin = true\nsuperuser = true"),
        &["superuser", "unknown field"],
    );
    refused(
        &FULL.replace("[users.alice]\ngroups", "[users.alice]\ngroup"),
        &["group", "unknown field"],
    );
}

#[test]
fn unknown_conflict_key_is_an_error() {
    refused(
        &FULL.replace("[[conflicts]]\n", "[[conflicts]]\nseverity = \"high\"\n"),
        &["severity", "unknown field"],
    );
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn bad_user_names_are_errors_naming_the_key() {
    // Upper case, a Cyrillic 'а' that looks like a Latin 'a', a leading '-'.
    for bad in ["Alice", "\u{430}lice", "-alice", "al ice", ""] {
        let text = format!("[users.\"{bad}\"]\ngroups = [\"dev\"]\n");
        let msg = err(&text);
        assert!(msg.contains(&format!("users.{bad}")), "{bad:?}: {msg}");
    }
}

#[test]
fn bad_group_names_are_errors_naming_the_key() {
    for bad in ["Dev", "d\u{435}v", "-dev"] {
        refused(
            &format!("[users.alice]\ngroups = [\"{bad}\"]\n"),
            &["users.alice.groups"],
        );
        refused(
            &with_role_line("").replace(
                "requesters = [\"group:dev\"]",
                &format!("requesters = [\"group:{bad}\"]"),
            ),
            &["roles.x.requesters"],
        );
        refused(
            &with_role_line("").replace(
                "approvers = [\"group:dba\"]",
                &format!("approvers = [\"group:{bad}\"]"),
            ),
            &["roles.x.approvers"],
        );
        refused(
            &with_role_line("").replace(
                "approvers = [\"group:dba\"]",
                &format!("approval_steps = [{{ approvers = [\"group:{bad}\"] }}]"),
            ),
            &["roles.x.approval_steps[0]"],
        );
    }
}

#[test]
fn bad_role_names_are_errors_naming_the_key() {
    for bad in ["Prod", "pr\u{43e}d", "-prod"] {
        let text = with_role_line("").replace("[roles.x]", &format!("[roles.\"{bad}\"]"));
        refused(&text, &[&format!("roles.{bad}")]);
    }
}

#[test]
fn members_must_be_group_or_user_prefixed() {
    for bad in ["dev", "team:dev", "group:", "user:", ":dev"] {
        refused(
            &with_role_line("").replace(
                "requesters = [\"group:dev\"]",
                &format!("requesters = [\"{bad}\"]"),
            ),
            &["roles.x.requesters"],
        );
    }
    refused(
        &with_role_line("").replace("requesters = [\"group:dev\"]", "requesters = []"),
        &["roles.x.requesters", "at least one"],
    );
}

#[test]
fn undefined_user_member_is_an_error() {
    refused(
        &with_role_line("").replace(
            "approvers = [\"group:dba\"]",
            "approvers = [\"user:mallory\"]",
        ),
        &["roles.x.approvers", "mallory", "not defined"],
    );
    refused(
        &with_role_line("").replace(
            "requesters = [\"group:dev\"]",
            "requesters = [\"user:mallory\"]",
        ),
        &["roles.x.requesters", "mallory"],
    );
    // A defined user is fine.
    let c =
        ok(&with_role_line("")
            .replace("approvers = [\"group:dba\"]", "approvers = [\"user:bob\"]"));
    assert_eq!(
        c.policy.roles[&r("x")].steps[0].approvers,
        vec![Member::User(u("bob"))]
    );
}

#[test]
fn group_without_members_is_a_warning() {
    let c = ok(&with_role_line("").replace(
        "approvers = [\"group:dba\"]",
        "approvers = [\"group:dba\", \"group:ghosts\"]",
    ));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("roles.x.approvers") && w.contains("ghosts")),
        "{:?}",
        c.warnings
    );
}

// ---------------------------------------------------------------------------------------
// Principals
// ---------------------------------------------------------------------------------------

#[test]
fn bad_principals_are_errors() {
    for bad in [
        "[]",
        "[\"*\"]",
        "[\"a,b\"]",
        "[\"a b\"]",
        "[\"-x\"]",
        "[\"\"]",
        "[\"ok\", \"r\u{43e}ot\"]",
        "[\"{role}\"]",
        "[\"{user}-{host}\"]",
        "[\"{user\"]",
        "[\"-{user}\"]",
    ] {
        let msg = err(&with_principals(bad));
        assert!(msg.contains("roles.x.principals"), "{bad}: {msg}");
    }
}

#[test]
fn user_template_too_long_for_a_user_is_an_error() {
    let long = "l".repeat(60);
    let text = format!(
        "{}\n[users.{long}]\ngroups = [\"dev\"]\n",
        with_principals("[\"admin-{user}\"]")
    );
    let msg = err(&text);
    assert!(msg.contains("roles.x.principals"), "{msg}");
    assert!(msg.contains(&long), "the message names the user: {msg}");
    // The same template is fine with short names only.
    ok(&with_principals("[\"admin-{user}\"]"));
    // And for the long name when the result fits (60 + 4 = 64).
    ok(&format!(
        "{}\n[users.{long}]\ngroups = [\"dev\"]\n",
        with_principals("[\"a-{user}-\"]")
    ));
}

#[test]
fn user_template_expands_per_user() {
    let c = ok(&with_principals(
        "[\"{user}\", \"{user}-ro\", \"shared\", \"alice\"]",
    ));
    let x = &c.policy.roles[&r("x")];
    let names = |user: &str| -> Vec<String> {
        x.principals_for(&u(user))
            .unwrap()
            .iter()
            .map(|p: &Principal| p.as_str().to_owned())
            .collect()
    };
    // Duplicates collapse, order is kept.
    assert_eq!(names("alice"), ["alice", "alice-ro", "shared"]);
    assert_eq!(names("bob"), ["bob", "bob-ro", "shared", "alice"]);
}

// ---------------------------------------------------------------------------------------
// Durations, addresses, extensions, options
// ---------------------------------------------------------------------------------------

#[test]
fn bad_durations_are_errors() {
    for bad in ["0s", "-1m", "abc", "1500ms", "400days", ""] {
        refused(
            &with_role_line(&format!("max_ttl = \"{bad}\"")),
            &["roles.x.max_ttl"],
        );
        refused(
            &with_role_line(&format!("default_ttl = \"{bad}\"")),
            &["roles.x.default_ttl"],
        );
        refused(
            &format!("[requests]\npending_ttl = \"{bad}\"\n"),
            &["requests.pending_ttl"],
        );
    }
}

#[test]
fn default_ttl_over_max_ttl_is_an_error() {
    refused(
        &with_role_line("default_ttl = \"3h\"\nmax_ttl = \"2h\""),
        &["roles.x.default_ttl", "max_ttl"],
    );
    // Equal is fine.
    let c = ok(&with_role_line("default_ttl = \"2h\"\nmax_ttl = \"2h\""));
    assert_eq!(
        c.policy.roles[&r("x")].default_ttl,
        Duration::from_secs(7200)
    );
    // Over the implicit 2h max_ttl, too.
    refused(
        &with_role_line("default_ttl = \"3h\""),
        &["roles.x.default_ttl"],
    );
}

#[test]
fn invalid_cidrs_are_errors() {
    for bad in [
        "10.0.0.1/8",
        "10.0.0.0/33",
        "10.0.0",
        "any",
        "fd00::1/8",
        "",
    ] {
        refused(
            &with_role_line(&format!("source_address = [\"{bad}\"]")),
            &["roles.x.source_address"],
        );
    }
    refused(
        &with_role_line("source_address = [\"10.0.0.1/8\"]"),
        &["host bits", "10.0.0.0/8"],
    );
    refused(
        &with_role_line("source_address = []"),
        &["roles.x.source_address"],
    );
    let c = ok(&with_role_line(
        "source_address = [\"10.0.0.0/8\", \" 192.0.2.7 \", \"2001:db8::/32\"]",
    ));
    let nets: Vec<String> = c.policy.roles[&r("x")]
        .source_address
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
}

#[test]
fn non_standard_extension_is_an_error() {
    for bad in [
        "permit-everything",
        "Permit-pty",
        "permit-pty ",
        "force-command",
    ] {
        refused(
            &with_role_line(&format!("extensions = [\"{bad}\"]")),
            &["roles.x.extensions"],
        );
    }
    let c = ok(&with_role_line("extensions = []"));
    assert!(c.policy.roles[&r("x")].extensions.is_empty());
}

#[test]
fn bad_force_command_is_an_error() {
    for bad in ["", "   ", "ls\\nrm -rf /"] {
        refused(
            &with_role_line(&format!("force_command = \"{bad}\"")),
            &["roles.x.force_command"],
        );
    }
    refused(
        &with_role_line(&format!("force_command = \"{}\"", "x".repeat(1025))),
        &["roles.x.force_command"],
    );
}

// ---------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------

#[test]
fn approval_steps_with_approvers_is_an_error() {
    let text = with_role_line("approval_steps = [{ approvers = [\"group:dba\"], approvals = 1 }]");
    refused(&text, &["roles.x", "exclusive"]);
    let text = with_role_line("").replace(
        "approvers = [\"group:dba\"]",
        "approvals = 1\napproval_steps = [{ approvers = [\"group:dba\"] }]",
    );
    refused(&text, &["roles.x", "exclusive"]);
    let text = with_role_line("").replace("approvers = [\"group:dba\"]", "approval_steps = []");
    refused(&text, &["roles.x.approval_steps"]);
}

#[test]
fn approvals_zero_is_an_error() {
    refused(
        &with_role_line("approvals = 0"),
        &["roles.x.approvers", "between 1 and 100"],
    );
    refused(&with_role_line("approvals = 101"), &["roles.x.approvers"]);
    let text = with_role_line("").replace(
        "approvers = [\"group:dba\"]",
        "approval_steps = [{ approvers = [\"group:dba\"] }, { approvers = [\"group:dba\"], approvals = 0 }]",
    );
    refused(&text, &["roles.x.approval_steps[1]"]);
    refused(&with_role_line("approvals = -1"), &["approvals"]);
}

#[test]
fn missing_approvers_is_an_error() {
    let text = with_role_line("").replace("approvers = [\"group:dba\"]", "");
    refused(&text, &["roles.x.approvers"]);
    let text = with_role_line("").replace("approvers = [\"group:dba\"]", "approvals = 1");
    refused(&text, &["roles.x.approvers"]);
}

#[test]
fn satisfiability_is_judged_per_requester_not_per_kind_of_requester() {
    // Two approvals from group:dba = {carol, zed}. dave and erin (not in it) are checked
    // first and are fine; zed, checked last, is in it himself, which leaves only carol:
    // he must be the one named.
    let c = ok(r#"
[users.carol]
groups = ["dba"]
[users.dave]
groups = ["dev"]
[users.erin]
groups = ["dev"]
[users.zed]
groups = ["dba", "dev"]
[roles.pair]
principals = ["x"]
requesters = ["group:dev"]
approvers = ["group:dba"]
approvals = 2
"#);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("a request by zed"),
        "{}",
        c.warnings[0]
    );
}

#[test]
fn unsatisfiable_role_loads_with_a_warning() {
    // Two approvals needed; besides the requester alice, only bob may approve.
    let c = ok(r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[roles.pair]
principals = ["x"]
requesters = ["user:alice"]
approvers = ["user:alice", "user:bob"]
approvals = 2
"#);
    assert!(c.policy.roles.contains_key(&r("pair")));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = &c.warnings[0];
    assert!(w.contains("roles.pair"), "{w}");
    assert!(w.contains("alice"), "{w}");
    assert!(w.contains("never be approved"), "{w}");

    // The same role with a third eligible person is fine.
    let c = ok(r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[users.carol]
groups = ["dba"]
[roles.pair]
principals = ["x"]
requesters = ["user:alice"]
approvers = ["user:alice", "group:dba"]
approvals = 2
"#);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn role_nobody_can_request_is_a_warning() {
    let c = ok(&with_role_line("").replace("group:dev", "group:interns"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("roles.x") && w.contains("nobody can request")),
        "{:?}",
        c.warnings
    );
}

// ---------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------

#[test]
fn conflict_naming_an_unknown_role_is_an_error() {
    refused(
        &FULL.replace(
            "roles = [\"deploy\", \"deploy-audit\"]",
            "roles = [\"deploy\", \"deploy-audti\"]",
        ),
        &["conflicts[0].roles", "deploy-audti", "not defined"],
    );
    refused(
        &FULL.replace(
            "roles = [\"deploy\", \"deploy-audit\"]",
            "roles = [\"deploy\", \"Deploy-Audit\"]",
        ),
        &["conflicts[0].roles"],
    );
}

#[test]
fn conflict_with_only_one_role_is_an_error() {
    refused(
        &FULL.replace(
            "roles = [\"deploy\", \"deploy-audit\"]",
            "roles = [\"deploy\"]",
        ),
        &["conflicts[0].roles", "at least two"],
    );
    refused(
        &FULL.replace(
            "roles = [\"deploy\", \"deploy-audit\"]",
            "roles = [\"deploy\", \"deploy\"]",
        ),
        &["conflicts[0].roles", "at least two"],
    );
    refused(
        &FULL.replace("roles = [\"deploy\", \"deploy-audit\"]", "roles = []"),
        &["conflicts[0].roles"],
    );
}

#[test]
fn conflict_reason_is_required_text() {
    let reason =
        "reason = \"whoever deploys must not also be able to rewrite the deploy audit trail\"";
    refused(
        &FULL.replace(reason, "reason = \"\""),
        &["conflicts[0].reason"],
    );
    refused(
        &FULL.replace(reason, "reason = \"a\\u202eb\""),
        &["conflicts[0].reason"],
    );
    refused(&FULL.replace(reason, ""), &["reason"]);
}

// ---------------------------------------------------------------------------------------
// SSH keys
// ---------------------------------------------------------------------------------------

#[test]
fn same_ssh_key_under_two_users_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let k1 = ssh_keygen(dir.path(), "one");
    let k2 = ssh_keygen(dir.path(), "two");
    // The comment differs; the key is the same.
    let k1_other_comment = format!("{} laptop", k1.rsplit_once(' ').unwrap().0);

    let c = ok(&format!(
        "[users.alice]\nssh_keys = [\"{k1}\"]\n[users.bob]\nssh_keys = [\"{k2}\"]\n"
    ));
    let alice_key = &c.policy.users[&u("alice")].ssh_keys[0];
    assert_eq!(
        c.policy.user_by_key(alice_key).map(|x| x.name.clone()),
        Some(u("alice"))
    );

    let msg = err(&format!(
        "[users.alice]\nssh_keys = [\"{k1}\"]\n[users.bob]\nssh_keys = [\"{k2}\", \"{k1_other_comment}\"]\n"
    ));
    assert!(msg.contains("users.bob.ssh_keys[1]"), "{msg}");
    assert!(msg.contains("alice"), "{msg}");
}

#[test]
fn bad_ssh_key_is_an_error_naming_the_key() {
    refused(
        "[users.alice]\nssh_keys = [\"ssh-ed25519 AAAA-not-base64\"]\n",
        &["users.alice.ssh_keys[0]"],
    );
}

// ---------------------------------------------------------------------------------------
// Paths and digests
// ---------------------------------------------------------------------------------------

#[test]
fn relative_data_dir_resolves_against_base_dir() {
    let text = "[server]\ndata_dir = \"state\"\n[ca]\nkey_file = \"keys/ca\"\n";
    let c =
        Config::from_toml_str(text, Path::new("cs.toml"), Path::new("/etc/countersign")).unwrap();
    assert_eq!(c.server.data_dir, Path::new("/etc/countersign/state"));
    assert_eq!(c.ca.key_file, Path::new("/etc/countersign/state/keys/ca"));
    assert_eq!(
        c.database_path(),
        Path::new("/etc/countersign/state/countersign.db")
    );

    let text = "[server]\ndata_dir = \"/var/lib/countersign\"\n";
    let c =
        Config::from_toml_str(text, Path::new("cs.toml"), Path::new("/etc/countersign")).unwrap();
    assert_eq!(c.server.data_dir, Path::new("/var/lib/countersign"));

    // Config::load uses the file's own folder as the base.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("countersign.toml");
    std::fs::write(&file, "[server]\ndata_dir = \"d\"\n").unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.server.data_dir, dir.path().join("d"));
    assert_eq!(c.path, file);
}

#[test]
fn unreadable_config_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    match Config::load(&missing) {
        Err(ConfigError::Read { path, .. }) => assert_eq!(path, missing),
        other => panic!("{other:?}"),
    }
}

const DIGEST_BASE: &str = r#"
[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
[users.carol]
groups = ["dba", "security"]

[roles.x]
principals = ["x", "{user}"]
requesters = ["group:dev"]
approval_steps = [
  { approvers = ["group:dba"], approvals = 1 },
  { approvers = ["group:security"], approvals = 1 },
]
default_ttl = "20m"
max_ttl = "1h"
extensions = ["permit-pty"]
force_command = "/bin/true"
source_address = ["10.0.0.0/8"]

[roles.y]
principals = ["y"]
requesters = ["group:dev"]
approvers = ["group:dba"]
"#;

fn digest_of(text: &str, role: &str) -> String {
    ok(text).policy.roles[&r(role)].digest()
}

#[test]
fn role_digest_changes_when_any_field_changes() {
    let base = digest_of(DIGEST_BASE, "x");
    assert_eq!(base.len(), 64);
    let edits: [(&str, &str); 12] = [
        ("principals = [\"x\", \"{user}\"]", "principals = [\"x\"]"),
        (
            "principals = [\"x\", \"{user}\"]",
            "principals = [\"{user}\", \"x\"]",
        ),
        (
            "requesters = [\"group:dev\"]\napproval_steps",
            "requesters = [\"group:dev\", \"user:bob\"]\napproval_steps",
        ),
        (
            "{ approvers = [\"group:dba\"], approvals = 1 },",
            "{ approvers = [\"group:dba\", \"user:alice\"], approvals = 1 },",
        ),
        (
            "{ approvers = [\"group:security\"], approvals = 1 },",
            "{ approvers = [\"group:security\"], approvals = 2 },",
        ),
        ("{ approvers = [\"group:security\"], approvals = 1 },", ""),
        ("default_ttl = \"20m\"", "default_ttl = \"21m\""),
        ("max_ttl = \"1h\"", "max_ttl = \"61m\""),
        (
            "extensions = [\"permit-pty\"]",
            "extensions = [\"permit-pty\", \"permit-agent-forwarding\"]",
        ),
        (
            "force_command = \"/bin/true\"",
            "force_command = \"/bin/false\"",
        ),
        ("force_command = \"/bin/true\"", ""),
        (
            "source_address = [\"10.0.0.0/8\"]",
            "source_address = [\"10.0.0.0/16\"]",
        ),
    ];
    let mut seen = vec![base.clone()];
    for (from, to) in edits {
        assert!(DIGEST_BASE.contains(from), "{from}");
        let edited = DIGEST_BASE.replacen(from, to, 1);
        let d = digest_of(&edited, "x");
        assert!(
            !seen.contains(&d),
            "digest unchanged or repeated after {from:?} -> {to:?}"
        );
        seen.push(d);
    }
    // Renaming the role is a change too.
    let renamed = digest_of(&DIGEST_BASE.replace("[roles.x]", "[roles.z]"), "z");
    assert!(!seen.contains(&renamed));
    // Removing source_address altogether.
    let open = digest_of(
        &DIGEST_BASE.replace("source_address = [\"10.0.0.0/8\"]", ""),
        "x",
    );
    assert!(!seen.contains(&open));
}

#[test]
fn role_digest_is_stable_otherwise() {
    let base = digest_of(DIGEST_BASE, "x");
    assert_eq!(digest_of(DIGEST_BASE, "x"), base);
    // Edits elsewhere in the file, in another role, or in users, leave it alone.
    let unrelated = [
        format!("[server]\nlisten = \"127.0.0.1:9999\"\n{DIGEST_BASE}"),
        format!("[requests]\npending_ttl = \"2h\"\n{DIGEST_BASE}"),
        DIGEST_BASE.replace("principals = [\"y\"]", "principals = [\"yy\"]"),
        format!("{DIGEST_BASE}\n[users.dave]\ngroups = [\"dba\"]\n"),
        format!("{DIGEST_BASE}\n[[conflicts]]\nroles = [\"x\", \"y\"]\nreason = \"no\"\n"),
        // Key order inside the role, and writing a default explicitly.
        DIGEST_BASE.replace(
            "default_ttl = \"20m\"\nmax_ttl = \"1h\"",
            "max_ttl = \"1h\"\ndefault_ttl = \"20m\"",
        ),
        DIGEST_BASE.replace("max_ttl = \"1h\"", "max_ttl = \"60m\""),
        DIGEST_BASE.replace(
            "{ approvers = [\"group:dba\"], approvals = 1 },",
            "{ approvers = [\"group:dba\"] },",
        ),
    ];
    for text in &unrelated {
        assert_eq!(digest_of(text, "x"), base, "changed by:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Principals `{user}` could turn into someone else's; listen addresses
// ---------------------------------------------------------------------------------------

/// Role `app` gives each dev a principal named after them; role `db` has the fixed
/// principal `dba` and is guarded by approvers and a conflict.
fn user_template_policy(users: &str, extra: &str) -> String {
    format!(
        r#"
{users}
[users.bob]
groups = ["ops"]

[roles.app]
principals = ["{{user}}"]
requesters = ["group:dev"]
approvers = ["group:ops"]

[roles.db]
principals = ["dba"]
requesters = ["group:ops"]
approvers = ["group:ops"]

[roles.deploy]
principals = ["deploy"]
requesters = ["group:dev"]
approvers = ["group:ops"]

[[conflicts]]
roles = ["db", "deploy"]
reason = "no deploying while holding the database"
{extra}
"#
    )
}

#[test]
fn a_user_named_like_another_roles_fixed_principal_is_refused() {
    // "dba" would get principal dba through role app: db's access without db's
    // approvers, and around the db/deploy conflict.
    refused(
        &user_template_policy("[users.dba]\ngroups = [\"dev\"]", ""),
        &[
            "roles.app.principals",
            "user dba",
            "principal dba",
            "role db",
        ],
    );
    // The same name is fine for someone who cannot request the template's role.
    ok(&user_template_policy(
        "[users.dba]\ngroups = [\"ops\"]\n[users.alice]\ngroups = [\"dev\"]",
        "",
    ));
    // And a role may list its own fixed principal next to the template.
    ok(&user_template_policy(
        "[users.app-admin]\ngroups = [\"dev\"]",
        "",
    ));
}

#[test]
fn a_user_named_like_the_principal_a_template_gives_another_user_is_refused() {
    refused(
        &user_template_policy(
            "[users.alice]\ngroups = [\"dev\"]\n[users.alice-admin]\ngroups = [\"dev\"]",
            "[roles.admin]\nprincipals = [\"{user}-admin\"]\nrequesters = [\"group:dev\"]\napprovers = [\"group:ops\"]",
        ),
        &["principals", "alice-admin", "user alice"],
    );
    // One user getting the same principal through two roles is no clash.
    ok(&user_template_policy(
        "[users.alice]\ngroups = [\"dev\"]",
        "[roles.app2]\nprincipals = [\"{user}\"]\nrequesters = [\"group:dev\"]\napprovers = [\"group:ops\"]",
    ));
}

#[test]
fn a_template_that_gives_someone_root_is_a_warning() {
    let c = ok(&user_template_policy(
        "[users.root]\ngroups = [\"dev\"]",
        "",
    ));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("roles.app.principals") && w.contains("root")),
        "{:?}",
        c.warnings
    );
    let c = ok(&user_template_policy(
        "[users.alice]\ngroups = [\"dev\"]",
        "",
    ));
    assert!(
        !c.warnings.iter().any(|w| w.contains("root")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn ssh_listen_must_not_be_the_http_listen_address() {
    for (server, ssh) in [
        ("127.0.0.1:7070", "127.0.0.1:7070"),
        ("127.0.0.1:7070", "0.0.0.0:7070"),
        ("[::]:7070", "127.0.0.1:7070"),
    ] {
        refused(
            &format!(
                "[server]\nlisten = \"{server}\"\nallow_plain_http = true\n[ssh]\nlisten = \"{ssh}\"\n"
            ),
            &["ssh.listen", "[server] listen"],
        );
    }
    for (server, ssh) in [
        ("127.0.0.1:7070", "127.0.0.1:2222"),
        ("127.0.0.1:7070", "127.0.0.2:7070"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        ok(&format!(
            "[server]\nlisten = \"{server}\"\n[ssh]\nlisten = \"{ssh}\"\n"
        ));
    }
}
