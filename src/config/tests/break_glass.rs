//! `[roles.NAME.break_glass]`.

use super::*;

/// [`BASE`] with a break-glass table on `x`.
fn with_break_glass(table: &str) -> String {
    format!("{BASE}\n[roles.x.break_glass]\n{table}\n")
}

#[test]
fn a_role_without_the_table_cannot_be_broken_into_and_one_with_it_has_defaults() {
    let c = ok(BASE);
    assert!(c.policy.roles.values().all(|r| r.break_glass.is_none()));
    let c = ok(&with_break_glass(
        r#"invokers = ["group:dev"]
reviewers = ["group:dba"]"#,
    ));
    let role = &c.policy.roles[&RoleName::parse("x").unwrap()];
    let bg = role.break_glass.as_ref().expect("break_glass");
    assert_eq!(
        bg.invokers,
        [Member::Group(GroupName::parse("dev").unwrap())]
    );
    assert_eq!(bg.max_ttl, role.max_ttl.min(Duration::from_secs(3600)));
    assert_eq!(bg.reviews, 1);
    assert_eq!(bg.review_within, Duration::from_secs(24 * 3600));
    assert!(bg.reason_pattern.is_none());
}

#[test]
fn the_contract_s_example_loads_and_its_pattern_matches_incident_ids() {
    let c = ok(&with_break_glass(
        r#"invokers = ["group:dev"]
max_ttl = "1h"
reason_pattern = "^INC-[0-9]+"
reviewers = ["group:dba"]
reviews = 1
review_within = "24h""#,
    ));
    let role = &c.policy.roles[&RoleName::parse("x").unwrap()];
    let pattern = role
        .break_glass
        .as_ref()
        .unwrap()
        .reason_pattern
        .as_ref()
        .unwrap();
    assert_eq!(pattern.source, "^INC-[0-9]+");
    assert!(pattern.matches("INC-123 db down"));
    assert!(!pattern.matches("db down, INC-123"));
}

#[test]
fn break_glass_refuses_what_would_weaken_it() {
    for (table, key) in [
        (r#"reviewers = ["group:dba"]"#, "invokers"),
        (
            r#"invokers = []
reviewers = ["group:dba"]"#,
            "break_glass.invokers",
        ),
        (r#"invokers = ["group:dev"]"#, "reviewers"),
        (
            r#"invokers = ["group:dev"]
reviewers = ["user:nobody"]"#,
            "break_glass.reviewers",
        ),
        (
            r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
max_ttl = "30d""#,
            "break_glass.max_ttl",
        ),
        (
            r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
reason_pattern = "^INC-[0-9+""#,
            "break_glass.reason_pattern",
        ),
        (
            r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
reviews = 0"#,
            "break_glass.reviews",
        ),
        (
            r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
review_within = "1m""#,
            "break_glass.review_within",
        ),
        (
            r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
approvers = ["group:dba"]"#,
            "unknown field",
        ),
    ] {
        let e = err(&with_break_glass(table));
        assert!(e.contains(key), "{table}: {e}");
    }
}

#[test]
fn too_few_reviewers_for_reviews_is_a_warning() {
    let c = ok(&with_break_glass(
        r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
reviews = 50"#,
    ));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("break_glass") && w.contains("reviews = 50")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn the_table_does_not_change_the_role_s_digest() {
    let plain = ok(BASE);
    let broken = ok(&with_break_glass(
        r#"invokers = ["group:dev"]
reviewers = ["group:dba"]"#,
    ));
    let name = RoleName::parse("x").unwrap();
    assert_eq!(
        plain.policy.roles[&name].digest(),
        broken.policy.roles[&name].digest()
    );
}

#[test]
fn the_recorded_policy_names_who_may_break_the_glass() {
    let c = ok(&with_break_glass(
        r#"invokers = ["group:dev"]
reviewers = ["group:dba"]
reason_pattern = "^INC-"
reviews = 1"#,
    ));
    let recorded = crate::policy::summary::summary(&c.policy);
    let bg = &recorded["roles"]["x"]["break_glass"];
    assert_eq!(bg["invokers"], serde_json::json!(["group:dev"]));
    assert_eq!(bg["reason_pattern"], "^INC-");
    // A role without the table records none.
    assert!(
        crate::policy::summary::summary(&ok(BASE).policy)["roles"]["x"]
            .get("break_glass")
            .is_none()
    );
}
