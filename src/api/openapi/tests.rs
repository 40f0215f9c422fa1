//! The document against the code: the router's routes, the error codes and their
//! statuses, and the fields the service's answer types serialize.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{document, errors, schemas};
use crate::error_code::ErrorCode;
use crate::names::Serial;
use crate::service::{
    ApprovalView, CertificateView, ListPage, RequestView, RevocationView, StepView, WhoAmI,
};

type Routes = BTreeMap<String, BTreeSet<String>>;

/// The text of `s` up to the `)` that closes the call it is the inside of.
fn call_arguments(s: &str) -> &str {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &s[..i];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced .route( call")
}

/// Every `.route("PATH", METHOD(..).METHOD(..))` of a source file: path -> methods.
fn routes_in(source: &str) -> Routes {
    let mut routes = Routes::new();
    for (at, call) in source.match_indices(".route(") {
        let arguments = call_arguments(&source[at + call.len()..]);
        let path = arguments.split('"').nth(1).expect("a path literal");
        let methods = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|m| {
                arguments.match_indices(&format!("{m}(")).any(|(i, _)| {
                    let before = arguments[..i].chars().next_back();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
            })
            .map(str::to_owned)
            .collect();
        assert!(
            routes.insert(path.to_owned(), methods).is_none(),
            "{path} twice"
        );
    }
    routes
}

fn documented() -> Routes {
    document()["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item.as_object().expect("a path item").keys().cloned();
            (path.clone(), methods.collect())
        })
        .collect()
}

#[test]
fn every_route_of_the_api_is_documented_with_its_methods_and_nothing_else_is() {
    let routes = routes_in(include_str!("../../api.rs"));
    assert!(
        routes.len() >= 25,
        "the scan found too few routes: {routes:?}"
    );
    let documented = documented();
    for (path, methods) in &routes {
        assert_eq!(
            documented.get(path),
            Some(methods),
            "{path}: router vs document"
        );
    }
    for path in documented.keys() {
        assert!(
            routes.contains_key(path),
            "{path} is documented but not routed"
        );
    }
}

#[test]
fn the_web_ui_pages_are_not_in_the_document() {
    let pages = routes_in(include_str!("../web.rs"));
    assert!(pages.contains_key("/requests/{id}"), "{pages:?}");
    let documented = documented();
    for page in pages.keys() {
        assert!(!page.starts_with("/v1/"), "{page} is a page under /v1");
        assert!(!documented.contains_key(page), "{page} is documented");
    }
}

#[test]
fn every_api_error_code_is_in_the_error_answer_of_its_status_only() {
    let responses = errors::responses();
    for code in ErrorCode::API {
        let status = errors::status(*code).expect("an API code has a status");
        for (name, response) in &responses {
            let listed = response["content"]["application/json"]["schema"]["properties"]
                ["error"]["properties"]["code"]["enum"]
                .as_array()
                .expect("codes")
                .contains(&Value::from(code.as_str()));
            assert_eq!(
                listed,
                *name == format!("Error{status}"),
                "{code} in {name}"
            );
        }
    }
    for code in ErrorCode::SSH_ONLY {
        assert_eq!(errors::status(*code), None, "{code} is not an HTTP answer");
    }
}

/// The `| HTTP | code | when |` rows of docs/api.md: code -> status.
fn documented_statuses() -> BTreeMap<String, u16> {
    let doc = include_str!("../../../docs/api.md");
    let table = doc
        .split("\n## Errors\n")
        .nth(1)
        .expect("an Errors section");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let status = cells.get(1)?.parse().ok()?;
            let code = cells.get(2)?.trim_matches('`');
            (!code.is_empty() && code != "—").then(|| (code.to_owned(), status))
        })
        .collect()
}

#[test]
fn each_code_has_the_status_the_api_reference_gives_it() {
    let table = documented_statuses();
    assert!(table.len() >= ErrorCode::API.len(), "{table:?}");
    for code in ErrorCode::API {
        assert_eq!(
            table.get(code.as_str()).copied(),
            errors::status(*code),
            "{code}: docs/api.md vs the document"
        );
    }
}

#[test]
fn at_most_matches_exactly_the_numbers_up_to_its_bound() {
    assert_eq!(
        schemas::at_most(366),
        "[1-9][0-9]{0,1}|[1-2][0-9]{2}|3[0-5][0-9]{1}|36[0-5]|366"
    );
    assert_eq!(schemas::at_most(9), "[1-8]|9");
    assert_eq!(schemas::at_most(10), "[1-9][0-9]{0,0}|10");
    assert!(schemas::at_most(u64::MAX).ends_with("|18446744073709551615"));
}

/// The schema named `name`, its `$ref`s followed.
fn component(name: &str) -> &'static Value {
    &document()["components"]["schemas"][name]
}

/// The property names of a schema, and its required ones.
fn fields(schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let properties = schema["properties"].as_object().expect("properties");
    let required = schema["required"].as_array().expect("required");
    (
        properties.keys().cloned().collect(),
        required
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
    )
}

/// Asserts that `value`'s fields are exactly those of the schema `name`, all required but
/// `optional`.
fn assert_fields(name: &str, value: &Value, optional: &[&str]) {
    let sent: BTreeSet<String> = value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    let (properties, required) = fields(component(name));
    assert_eq!(sent, properties, "{name}: serialized vs documented");
    let mut expected = sent.clone();
    for o in optional {
        expected.remove(*o);
    }
    assert_eq!(required, expected, "{name}: required");
}

fn sample_request() -> RequestView {
    let serial = Serial::new(8812).expect("serial");
    RequestView {
        id: "r-aaaaaaaaaaaa".into(),
        role: "prod-db".into(),
        requester: "alice".into(),
        reason: "INC-4211".into(),
        status: crate::service::Status::Issued,
        created_at: "2026-11-28T14:02:00Z".into(),
        expires_at: "2026-11-28T15:02:00Z".into(),
        ttl_seconds: 2700,
        principals: vec!["dba".into()],
        public_key_fingerprint: "SHA256:x".into(),
        approvals: vec![ApprovalView {
            approver: "bob".into(),
            at: "2026-11-28T14:03:10Z".into(),
            comment: None,
        }],
        approvals_required: 1,
        approvals_needed: 0,
        role_changed: false,
        waiting_for: vec![StepView {
            approvers: vec!["group:dba".into()],
            approvals: 1,
            remaining: 1,
            approved_by: vec![],
        }],
        decided_at: None,
        decided_by: None,
        decision_code: None,
        decision_note: None,
        certificate: Some(CertificateView {
            serial,
            key_id: "countersign:r-aaaaaaaaaaaa:alice:prod-db".into(),
            valid_after: "2026-11-28T14:02:10Z".into(),
            valid_before: "2026-11-28T14:48:10Z".into(),
            revoked: Some(RevocationView {
                at: "2026-11-28T14:10:00Z".into(),
                by: "bob".into(),
                reason: "lost laptop".into(),
            }),
        }),
        requester_disabled: false,
        version: "3f9c0a6e1b2d4c58".into(),
        breakglass: Some(crate::service::BreakGlassView {
            ttl_asked_seconds: Some(7200),
            ttl_cut: true,
            reviewers: vec!["group:security".into()],
            reviews_required: 2,
            review_due: "2026-11-29T14:02:00Z".into(),
            overdue: false,
            verdicts: vec![crate::service::VerdictView {
                reviewer: "bob".into(),
                verdict: "justified".into(),
                comment: "INC-4211 confirmed".into(),
                at: "2026-11-28T16:00:00Z".into(),
            }],
            outcome: None,
            closed_at: None,
            allowed_by: None,
        }),
    }
}

#[test]
fn the_request_schemas_name_exactly_the_fields_a_request_is_sent_with() {
    let sent = serde_json::to_value(sample_request()).expect("json");
    assert_fields("Request", &sent, &["breakglass"]);
    assert_fields("BreakGlass", &sent["breakglass"], &[]);
    assert_fields("Verdict", &sent["breakglass"]["verdicts"][0], &[]);
    assert_fields("Approval", &sent["approvals"][0], &[]);
    assert_fields("Step", &sent["waiting_for"][0], &[]);
    assert_fields("Certificate", &sent["certificate"], &[]);
    assert_fields("Revocation", &sent["certificate"]["revoked"], &[]);
    let page = ListPage {
        requests: vec![sample_request()],
        next: Some(crate::names::RequestId::parse("r-aaaaaaaaaaab").expect("id")),
    };
    assert_fields(
        "RequestList",
        &serde_json::to_value(page).expect("json"),
        &["next"],
    );
}

#[test]
fn the_whoami_schema_names_exactly_its_fields() {
    let me = WhoAmI {
        user: "alice".into(),
        groups: vec![],
        admin: false,
        can_request: vec![],
        can_approve: vec![],
        can_break_glass: vec![],
        can_review: vec![],
        disabled: false,
        scopes: Some(vec!["request".into()]),
        session: Some("oidc-device".into()),
    };
    assert_fields(
        "WhoAmI",
        &serde_json::to_value(me).expect("json"),
        &["scopes", "session"],
    );
}
