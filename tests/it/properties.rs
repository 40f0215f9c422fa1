//! Property tests of the whole service (policy core + store + CA), driven directly
//! through `countersign::service::Service` on a temp dir: for random policies, users and
//! sequences of create/approve/deny/cancel/done, every certificate that comes out has
//! enough distinct eligible approvals none of which is the requester's, principals only
//! from its role, a lifetime within the role's `max_ttl`, and never coexists with an
//! active certificate for a conflicting role.

use std::collections::BTreeSet;
use std::time::Duration;

use countersign::config::Config;
use countersign::names::{RequestId, RoleName, Text, UserName};
use countersign::pubkey::SubjectKey;
use countersign::service::{self, NewRequest, Service, StepUp, TokenSpec};
use proptest::prelude::*;

use crate::helpers::*;

const GROUPS: [&str; 3] = ["g0", "g1", "g2"];
const PRINCIPALS: [&str; 3] = ["p0", "p1", "{user}"];
const MAX_TTLS: [u64; 3] = [600, 3600, 7200];

#[derive(Debug, Clone)]
struct RoleSpec {
    principals: Vec<usize>,
    requesters: Vec<usize>,
    approvers: Vec<usize>,
    approvals: u32,
    max_ttl: usize,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        user: usize,
        role: usize,
        ttl: Option<u64>,
    },
    Approve {
        user: usize,
        request: usize,
    },
    Deny {
        user: usize,
        request: usize,
    },
    Cancel {
        request: usize,
    },
    Done {
        request: usize,
    },
}

#[derive(Debug, Clone)]
struct Scenario {
    users: Vec<Vec<usize>>,
    roles: Vec<RoleSpec>,
    conflict: bool,
    ops: Vec<Op>,
}

fn indices(n: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::sample::subsequence((0..n).collect::<Vec<_>>(), 1..=n)
}

fn role_spec() -> impl Strategy<Value = RoleSpec> {
    (
        indices(PRINCIPALS.len()),
        indices(GROUPS.len()),
        indices(GROUPS.len()),
        prop_oneof![3 => Just(1u32), 2 => Just(2u32), 1 => Just(3u32)],
        0..MAX_TTLS.len(),
    )
        .prop_map(
            |(principals, requesters, approvers, approvals, max_ttl)| RoleSpec {
                principals,
                requesters,
                approvers,
                approvals,
                max_ttl,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6usize, 0..3usize, proptest::option::of(1u64..10_000))
            .prop_map(|(user, role, ttl)| Op::Create { user, role, ttl }),
        8 => (0..6usize, 0..32usize).prop_map(|(user, request)| Op::Approve { user, request }),
        1 => (0..6usize, 0..32usize).prop_map(|(user, request)| Op::Deny { user, request }),
        1 => (0..32usize).prop_map(|request| Op::Cancel { request }),
        1 => (0..32usize).prop_map(|request| Op::Done { request }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proptest::collection::vec(proptest::sample::subsequence(vec![0, 1, 2], 1..=3), 3..=6),
        proptest::collection::vec(role_spec(), 1..=3),
        any::<bool>(),
        proptest::collection::vec(op(), 20..60),
    )
        .prop_map(|(users, roles, conflict, ops)| Scenario {
            users,
            roles,
            conflict,
            ops,
        })
}

fn members(groups: &[usize]) -> String {
    let m: Vec<String> = groups
        .iter()
        .map(|g| format!("\"group:{}\"", GROUPS[*g]))
        .collect();
    m.join(", ")
}

fn config_text(s: &Scenario) -> String {
    let mut t = String::from("[server]\ndata_dir = \"data\"\n[ca]\nbackdate = \"0s\"\n");
    for (i, groups) in s.users.iter().enumerate() {
        let g: Vec<String> = groups
            .iter()
            .map(|g| format!("\"{}\"", GROUPS[*g]))
            .collect();
        t += &format!("[users.u{i}]\ngroups = [{}]\n", g.join(", "));
    }
    for (i, r) in s.roles.iter().enumerate() {
        let p: Vec<String> = r
            .principals
            .iter()
            .map(|p| format!("\"{}\"", PRINCIPALS[*p]))
            .collect();
        t += &format!(
            "[roles.r{i}]\nprincipals = [{}]\nrequesters = [{}]\napprovers = [{}]\n\
             approvals = {}\nmax_ttl = \"{}s\"\ndefault_ttl = \"{}s\"\n",
            p.join(", "),
            members(&r.requesters),
            members(&r.approvers),
            r.approvals,
            MAX_TTLS[r.max_ttl],
            MAX_TTLS[r.max_ttl].min(600),
        );
    }
    if s.conflict && s.roles.len() >= 2 {
        t += "[[conflicts]]\nroles = [\"r0\", \"r1\"]\nreason = \"sod\"\n";
    }
    t
}

fn user(i: usize) -> UserName {
    UserName::parse(&format!("u{i}")).unwrap()
}

/// Runs the operations; results are ignored (refusals are expected), only the outcome
/// in the database is judged.
fn play(service: &Service, s: &Scenario) {
    // Each user's API token: approving takes a step-up proof of an authenticated caller.
    let spec = TokenSpec {
        ttl: None,
        bot_scopes: None,
    };
    let tokens: Vec<String> = (0..s.users.len())
        .map(|i| {
            let config = service.config();
            service::create_token(service.store(), &config, &user(i), "operator", &spec)
                .expect("a token")
                .0
        })
        .collect();
    let mut ids: Vec<(RequestId, UserName)> = Vec::new();
    // Half the picks go to the three newest requests, so that approvals pile up.
    let pick = |ids: &[(RequestId, UserName)], k: usize| match ids.len() {
        0 => None,
        n if k < 16 => ids.get(n - 1 - k % n.min(3)).cloned(),
        n => ids.get(k % n).cloned(),
    };
    let text = |t: &str| Text::parse(t, "reason").unwrap();
    for op in &s.ops {
        match *op {
            Op::Create { user: u, role, ttl } => {
                let (u, role) = (
                    user(u % s.users.len()),
                    format!("r{}", role % s.roles.len()),
                );
                let key = SubjectKey::parse(&public_line(&new_key())).unwrap();
                let req = NewRequest {
                    role: RoleName::parse(&role).unwrap(),
                    public_key: key,
                    reason: text("property"),
                    ttl: ttl.map(Duration::from_secs),
                };
                if let Ok(view) = service.create_request(&u, req) {
                    ids.push((RequestId::parse(view.id.as_str()).unwrap(), u));
                }
            }
            Op::Approve { user: u, request } => {
                if let Some((id, _)) = pick(&ids, request) {
                    let caller = service
                        .authenticate_credential(&tokens[u % s.users.len()])
                        .expect("the user's token");
                    let who = service
                        .step_up(&caller, StepUp::Approve)
                        .expect("a token needs no step-up");
                    let _ = service.approve(&who, &id, None);
                }
            }
            Op::Deny { user: u, request } => {
                if let Some((id, _)) = pick(&ids, request) {
                    let _ = service.deny(&user(u % s.users.len()), &id, text("no"));
                }
            }
            Op::Cancel { request } => {
                if let Some((id, requester)) = pick(&ids, request) {
                    let _ = service.cancel(&requester, &id);
                }
            }
            Op::Done { request } => {
                if let Some((id, requester)) = pick(&ids, request) {
                    let _ = service.done(&requester, &id, None);
                }
            }
        }
    }
}

struct Issued {
    request: String,
    requester: UserName,
    role: RoleName,
    issued_seq: i64,
    revoked_seq: Option<i64>,
    cert: ssh_key::Certificate,
}

fn issued(service: &Service) -> Vec<Issued> {
    let conn = rusqlite::Connection::open(service.config().database_path()).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT c.request_id, c.requester, c.role, a.seq, c.revoked_seq, c.certificate
             FROM certificates c JOIN audit a
               ON a.action = 'certificate.issued' AND a.request_id = c.request_id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok(Issued {
            request: r.get(0)?,
            requester: UserName::parse(&r.get::<_, String>(1)?).unwrap(),
            role: RoleName::parse(&r.get::<_, String>(2)?).unwrap(),
            issued_seq: r.get(3)?,
            revoked_seq: r.get(4)?,
            cert: ssh_key::Certificate::from_openssh(&r.get::<_, String>(5)?).unwrap(),
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn approvers_of(service: &Service, request: &str) -> Vec<UserName> {
    let conn = rusqlite::Connection::open(service.config().database_path()).unwrap();
    let mut stmt = conn
        .prepare("SELECT approver FROM approvals WHERE request_id = ?1")
        .unwrap();
    stmt.query_map([request], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|a| UserName::parse(&a.unwrap()).unwrap())
        .collect()
}

/// The invariants (never one's own approval, enough approvals, approvers eligible,
/// principals and lifetime within the role, no conflicting roles held at once), for
/// every certificate issued; returns how many there were.
fn check(service: &Service) -> Result<usize, TestCaseError> {
    let policy = &service.config().policy;
    let all = issued(service);
    for c in &all {
        let role = &policy.roles[&c.role];
        let approvers: BTreeSet<UserName> = approvers_of(service, &c.request).into_iter().collect();
        prop_assert!(
            !approvers.contains(&c.requester),
            "{} approved own {}",
            c.requester,
            c.request
        );
        prop_assert!(
            approvers.len() as u32 >= role.approvals_needed(),
            "{}: {approvers:?}",
            c.request
        );
        for a in &approvers {
            prop_assert!(
                role.steps
                    .iter()
                    .any(|s| countersign::policy::People::of_policy(policy)
                        .is_any_member(a, &s.approvers)),
                "{a} not an approver"
            );
        }
        let allowed: Vec<String> = role
            .principals_for(&c.requester)
            .unwrap()
            .iter()
            .map(|p| p.to_string())
            .collect();
        prop_assert!(!c.cert.valid_principals().is_empty());
        for p in c.cert.valid_principals() {
            prop_assert!(allowed.contains(p), "principal {p} not in {allowed:?}");
        }
        let lifetime = c.cert.valid_before() - c.cert.valid_after();
        prop_assert!(
            lifetime <= role.max_ttl.as_secs(),
            "{lifetime}s > {:?}",
            role.max_ttl
        );
        for other in &all {
            let conflicting = other.requester == c.requester
                && policy.conflict_between(&other.role, &c.role).is_some()
                && other.issued_seq < c.issued_seq
                && other.revoked_seq.is_none_or(|r| r > c.issued_seq);
            prop_assert!(
                !conflicting,
                "{} holds {} and {}",
                c.requester,
                other.role,
                c.role
            );
        }
    }
    Ok(all.len())
}

/// Certificates the property test saw issued, over all its cases: if the scenarios never
/// led to a certificate, the invariants would have been checked on nothing.
static CHECKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    fn no_certificate_breaks_separation_of_duties_cases(s in scenario()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.toml"), config_text(&s)).unwrap();
        let config = Config::load(&dir.path().join("c.toml")).unwrap();
        let service = Service::open(
            config,
            countersign::state::Access::Init { new_database: false },
            "operator:test",
        )
        .unwrap();
        play(&service, &s);
        let n = check(&service)?;
        CHECKED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn no_certificate_breaks_separation_of_duties() {
    no_certificate_breaks_separation_of_duties_cases();
    let checked = CHECKED.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("property cases issued {checked} certificates");
    assert!(
        checked >= 10,
        "the scenarios issued only {checked} certificates in 48 cases; \
         the invariants were barely exercised"
    );
}
