//! Principals that a `{user}` template could turn into someone else's.

use super::*;

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
            "[roles.admin]\nprincipals = [\"{user}-admin\"]\n\
             requesters = [\"group:dev\"]\napprovers = [\"group:ops\"]",
        ),
        &["principals", "alice-admin", "user alice"],
    );
    // One user getting the same principal through two roles is no clash.
    ok(&user_template_policy(
        "[users.alice]\ngroups = [\"dev\"]",
        "[roles.app2]\nprincipals = [\"{user}\"]\n\
         requesters = [\"group:dev\"]\napprovers = [\"group:ops\"]",
    ));
}

#[test]
fn a_template_that_gives_someone_root_is_a_warning() {
    let c = ok(&user_template_policy(
        "[users.root]\ngroups = [\"dev\"]",
        "",
    ));
    assert!(
        warned(&c, &["roles.app.principals", "root"]),
        "{:?}",
        c.warnings
    );
    // Any system account's name, not only root's (found by a penetration test).
    let c = ok(&user_template_policy(
        "[users.ubuntu]\ngroups = [\"dev\"]",
        "",
    ));
    assert!(
        warned(
            &c,
            &["roles.app.principals", "principal ubuntu, a system account"]
        ),
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
