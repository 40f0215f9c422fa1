//! Schemathesis (v4, from PyPI) against a live server, from the document it serves: every
//! check, all four phases (examples, coverage, fuzzing, and the stateful phase, which
//! follows the document's links from creating a request to reading, approving, denying,
//! cancelling it and fetching its certificate), once authenticated as a requester and once
//! as an approver who is also an admin. Any failure fails the test: a 5xx, a status, header,
//! content type or body the document does not describe, a valid input refused or an
//! invalid one accepted, an operation that answers without its credential.
//!
//! The server has an identity provider (`oidc-provider`, as in `oidc_signin.rs`), so that
//! the sign-in endpoints do their real work, and limits raised far past what a fuzzer
//! sends (failed authentications, sign-in calls per address): with the defaults it would
//! be locked out within seconds and test nothing but the 429.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{TestApp, new_key, public_line};
use crate::oidc_signin::{PUBLIC_URL, SECRET, provider, sign_in_as};

/// Time for the examples, coverage and fuzzing phases (`--max-time`: fuzzing repeats until
/// it is spent; the first two go through the document once, whatever it costs).
const FUZZ_TIME: Duration = Duration::from_secs(30);

/// Time for the stateful phase, run on its own so that a slow machine, where the phases
/// before it take longer, does not leave it nothing (one run's budget is shared).
const STATEFUL_TIME: Duration = Duration::from_secs(20);

/// The policy: alice requests `prod-db`, bob approves it and is an admin, carol approves
/// too (she approves the certificates bob may revoke). `max_ttl` is the most any role may
/// have, so that every `ttl` the document allows is one the role takes.
const POLICY: &str = r#"
[server]
listen = "127.0.0.1:0"
data_dir = "data"
auth_failures_per_address = 1000000
auth_failures_per_token = 1000000
sign_in_requests_per_minute = 1000000

[requests]
pending_ttl = "1h"
max_pending_per_user = 1000

[users.alice]
groups = ["dev"]
[users.bob]
groups = ["dba"]
admin = true
[users.carol]
groups = ["dba"]

[roles.prod-db]
principals = ["postgres", "{user}"]
requesters = ["group:dev"]
approvers = ["group:dba"]
max_ttl = "366d"

[roles.ops]
principals = ["ops"]
requesters = ["group:dba"]
approvers = ["group:dba"]
max_ttl = "366d"
"#;

/// [`POLICY`] with `[oidc]` for the provider at `issuer`; its secret file in `dir`.
fn config(issuer: &str, dir: &Path) -> String {
    let secret = dir.join("oidc-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "{POLICY}\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"countersign\"\n\
         client_secret_file = \"{}\"\npublic_url = \"{PUBLIC_URL}\"\n\
         allow_insecure_loopback_issuer = true\n",
        secret.display()
    )
}

/// What one run is given besides its credential.
struct Setup {
    /// The role its creates ask for.
    role: &'static str,
    /// `[dictionaries]` and `[parameters]` of the config file: ids of things that exist.
    known: String,
}

/// The config file of one run (`schemathesis.toml`): as `user` (an API token), a session
/// of theirs for `POST /v1/oidc/logout` (the one operation an API token cannot do), and
/// `key` as the key their creates and key challenges carry.
fn schemathesis_toml(token: &str, session: &str, key: &str, setup: &Setup) -> String {
    let (role, known) = (setup.role, &setup.known);
    // A forgotten revocation's end must be in the next 31 days: no schema says "after now".
    let soon = (chrono::Utc::now() + chrono::Duration::hours(6)).to_rfc3339();
    format!(
        r#"# Every check is on by default in Schemathesis 4 (`--checks all` on the command line
# would also override the per-operation settings below).
headers = {{ Authorization = "Bearer {token}" }}
# Hypothesis's check of how fast it generates data: on a loaded machine (the whole suite
# on two cores) it fails a run whose server answered every call right.
suppress-health-check = ["too_slow"]

[generation]
database = "none"

[checks]
max_response_time = 10.0

# A body over 64 KiB (a field far past its `maxLength`) is refused 413 `payload_too_large`
# before its fields are read, and a query string that makes the request head longer than
# `max_header_bytes` 431 before any route: refusals like 400, missing from the check's
# default list.
[checks.negative_data_rejection]
expected-statuses = [
  "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "431",
  "5xx",
]

# Links come from the document (and `Location` headers). Inferring more from field names
# takes an audit event's `request_id` for a request's `id`, sends its `null` as "None"
# and counts that as valid input.
[phases.stateful.inference]
algorithms = ["location-headers"]

{known}

# A valid create names a role of this server's config and a real key: no schema can say
# either, so the run is given one of each (the document still says what they must look
# like, and negative cases still break them). An `Idempotency-Key` used before with
# another body is refused 422 `idempotency_mismatch`, by design, whatever the body.
[[operations]]
include-operation-id = "requests_create"
parameters = {{ "body.role" = "{role}", "body.public_key" = "{key}" }}
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx",
]

# Break-glass takes the same body (this server's roles have no break_glass table: 403
# `not_breakable` once the body holds).
[[operations]]
include-operation-id = "breakglass_use"
parameters = {{ "body.role" = "{role}", "body.public_key" = "{key}" }}

# `user` with `all=true` is refused 400 `invalid_request` (one or the other): two query
# parameters cannot say "not both" in the document.
[[operations]]
include-operation-id = "keys_list"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx",
]

[[operations]]
include-operation-id = "keys_challenge"
parameters = {{ "body.public_key" = "{key}" }}

# A valid registration carries a signature, by the key's private half, over a one-time
# challenge the server has just made: no generator can make one, so a schema-valid body
# is refused 400 `key_proof_failed` by design.
[[operations]]
include-operation-id = "keys_register"
checks.positive_data_acceptance.enabled = false

# The device flow's poll (RFC 8628 3.5) is answered 400 until the person confirmed, however
# well formed: `authorization_pending`, `invalid_grant` for a code that is not (or no
# longer) waiting. The protocol says so; the document describes that 400.
[[operations]]
include-operation-id = "token_post"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx",
]

# Host certificates: a join token, a renewal's proof and a host's principals come from
# the server or its config; a generator cannot make them. Enrollment and challenges get
# a real key (this server has no [host_ca]: 404 once the body holds), join tokens a
# principal of the right shape.
[[operations]]
include-operation-id = "host_enroll"
parameters = {{ "body.public_key" = "{key}" }}

[[operations]]
include-operation-id = "host_renew_challenge"
parameters = {{ "body.public_key" = "{key}" }}

[[operations]]
include-operation-id = "host_token_create"
parameters = {{ "body.principals" = ["web1.example.com"] }}

[[operations]]
include-operation-id = "host_renew"
checks.positive_data_acceptance.enabled = false

[[operations]]
include-operation-id = "logout_post"
headers = {{ Authorization = "Bearer {session}" }}

# A forgotten revocation is listed until an end in the next 31 days, relative to the
# server's clock: the run is given one (its serials are the generator's), but the
# examples phase takes the document's example time (in 2000), refused 400 by design.
[[operations]]
include-operation-id = "krl_forgotten"
parameters = {{ "body.valid_before" = "{soon}" }}
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx",
]
"#
    )
}

/// Runs Schemathesis against `app` with `toml`, the phases `phases` for at most
/// `max_time`; panics with its report unless it found nothing. Its report.
async fn schemathesis(
    app: &TestApp,
    who: &str,
    toml: &str,
    phases: &str,
    max_time: Duration,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, toml).unwrap();
    let url = format!("{}/v1/openapi.json", app.url);
    let max_time = max_time.as_secs().to_string();
    let (program, cwd, chosen) = (
        super::venv("schemathesis"),
        dir.path().to_owned(),
        phases.to_owned(),
    );
    let started = Instant::now();
    // On a blocking thread: the server answers on this test's runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .current_dir(cwd)
            .arg("--config-file")
            .arg(config)
            .args(["--no-color", "run", &url, "--workers", "1"])
            .args(["--phases", &chosen, "--max-time", &max_time])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // What went wrong first, so that a log which keeps only a report's head shows it.
    let found = ["FAILURES", "ERRORS", "WARNINGS"].map(|name| section(&report, name));
    assert!(
        out.status.success(),
        "Schemathesis ({phases}) as {who} found failures ({}):\n{}\n\nThe whole report:\n{report}",
        out.status,
        found.join("\n")
    );
    let summary = report
        .lines()
        .rev()
        .find(|l| l.starts_with("===="))
        .unwrap_or_default();
    let links = report.lines().find(|l| l.contains("API Links:"));
    let links = links.map(str::trim).unwrap_or_default();
    println!(
        "Schemathesis ({phases}) as {who}: {:.0?}, {summary} {links}\n{}",
        started.elapsed(),
        found[2]
    );
    report
}

/// The lines of `report`'s section `name` (from its `==== NAME ====` heading to the next
/// heading), at most 60 of them; empty if it has none.
fn section(report: &str, name: &str) -> String {
    let heading = |l: &str| l.starts_with("====");
    let lines = report
        .lines()
        .skip_while(|l| !(heading(l) && l.contains(name)))
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !heading(l))
        .map(|(_, l)| l)
        .take(60);
    lines.collect::<Vec<_>>().join("\n")
}

/// Both runs of `who`: the stateless phases, then the stateful one; each must find
/// nothing, and each phase must have run.
async fn both_runs(app: &TestApp, who: &str, toml: &str) {
    let stateless = "examples,coverage,fuzzing";
    let report = schemathesis(app, who, toml, stateless, FUZZ_TIME).await;
    for phase in ["Examples", "Coverage"] {
        assert!(
            report.contains(&format!("✅ {phase}")),
            "{phase} did not pass:\n{report}"
        );
    }
    let scenarios = |report: &str| -> u32 {
        let line = report
            .lines()
            .find_map(|l| l.trim().strip_prefix("Scenarios:"));
        line.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
    };
    let mut report = schemathesis(app, who, toml, "stateful", STATEFUL_TIME).await;
    // On a loaded machine the phase's budget can run out before its first scenario (the
    // generator starts slowly, not the server): once more with twice the time.
    if scenarios(&report) == 0 && report.contains("Time limit reached") {
        report = schemathesis(app, who, toml, "stateful", 2 * STATEFUL_TIME).await;
    }
    assert!(
        scenarios(&report) > 0,
        "the stateful phase ran no scenario:\n{report}"
    );
}

/// A server with the provider; `user`'s API token and a session of theirs.
async fn serve(user: &str) -> (TestApp, crate::idp::Idp, tempfile::TempDir, String) {
    let (idp, _) = provider();
    let secrets = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_with(&config(&idp.issuer, secrets.path())).await;
    let session = sign_in_as(&app, user).await;
    (app, idp, secrets, session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_as_a_requester() {
    let (app, _idp, _secrets, session) = serve("alice").await;
    let key = public_line(&new_key());
    let setup = Setup {
        role: "prod-db",
        known: String::new(),
    };
    let toml = schemathesis_toml(app.token("alice"), &session, &key, &setup);
    both_runs(&app, "alice (a requester)", &toml).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_as_an_approver() {
    let (app, _idp, _secrets, session) = serve("bob").await;
    // Requests of alice's waiting for bob, and certificates he may revoke (carol approved).
    let mut pending = Vec::new();
    for _ in 0..20 {
        pending.push(app.create_ok("alice", "prod-db").await);
    }
    let mut serials = Vec::new();
    for _ in 0..3 {
        let id = app.create_ok("alice", "prod-db").await;
        let (status, body) = app.approve("carol", &id).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{body}");
        serials.push(body["certificate"]["serial"].as_str().unwrap().to_owned());
    }
    let list = |values: &[String]| {
        let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
        quoted.join(", ")
    };
    let known = format!(
        "[dictionaries.requests]\nvalues = [{}]\n\n[dictionaries.serials]\nvalues = [{}]\n\n\
         [dictionaries.users]\nvalues = [\"carol\"]\n\n[parameters]\n\
         \"path.id\" = {{ dictionary = \"requests\", probability = 0.5 }}\n\
         \"path.serial\" = {{ dictionary = \"serials\", probability = 0.5 }}\n\
         \"path.name\" = {{ dictionary = \"users\", probability = 0.5 }}\n",
        list(&pending),
        list(&serials)
    );
    let key = public_line(&new_key());
    let setup = Setup { role: "ops", known };
    let toml = schemathesis_toml(app.token("bob"), &session, &key, &setup);
    both_runs(&app, "bob (an approver and admin)", &toml).await;
}
