//! Rule 1c: `{user}` principals of names the config never saw (people signed in through
//! the identity provider).

use super::Refusal;
use crate::names::UserName;
use crate::policy::{People, Role};

/// Names of accounts common Unix systems and cloud images have: a `{user}` principal
/// made from a name the identity provider gave, or for a `[users]` name that requests
/// through the provider's groups, is never one of them (one the TOML alone gives is a
/// warning at load: whoever wrote the config chose it).
pub(crate) const SYSTEM_ACCOUNTS: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "toor",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "nogroup",
    "sshd",
    "ssh",
    "messagebus",
    "syslog",
    "ubuntu",
    "debian",
    "centos",
    "fedora",
    "rocky",
    "almalinux",
    "ec2-user",
    "azureuser",
    "opc",
    "core",
    "admin1",
    "cloud-user",
    "vagrant",
    "pi",
    "git",
    "postgres",
    "mysql",
    "redis",
    "nginx",
    "apache",
    "httpd",
    "docker",
    "jenkins",
    "ansible",
    "deploy",
    "ftp",
    "operator",
    "adm",
    "halt",
    "shutdown",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "_apt",
    "polkitd",
    "dnsmasq",
    "chrony",
    "ntp",
    "tss",
    "tcpdump",
    "rpc",
    "rpcuser",
    "nfsnobody",
];

/// Rule 1c: a `{user}` principal is the requester's own. The config loader checks this
/// for every `[users]` name that requests the role by its TOML groups; anyone else — a
/// person who signed in through the identity provider with a name it never saw, or a
/// `[users]` name that requests the role only through the provider's groups — is checked
/// here: a principal their name makes must not be a fixed principal of another role, nor
/// one another `{user}` template gives another name (`bob-admin` from `"{user}"` is bob's
/// from `"{user}-admin"`), nor the name of a system account (`root`, `ubuntu`,
/// `postgres`, ... [`SYSTEM_ACCOUNTS`]).
pub fn principals_must_be_own(
    people: &People<'_>,
    role: &Role,
    user: &UserName,
) -> Result<(), Refusal> {
    let configured = people.policy.users.contains_key(user);
    // The loader checked this pair. A `[users]` entry whose groups come from the provider
    // (a name reserved with `oidc_subject`, say) was not: it requests nothing by the TOML
    // (found by a penetration test, 2026-12-07).
    if configured && People::of_policy(people.policy).is_any_member(user, &role.requesters) {
        return Ok(());
    }
    let refuse = |principal: &str, why: String| {
        Err(Refusal::PrincipalTaken {
            user: user.clone(),
            role: role.name.clone(),
            principal: principal.to_owned(),
            why,
        })
    };
    for t in role.principals.iter().filter(|t| t.is_template()) {
        // A name a template cannot expand is refused when the request is made.
        let Ok(p) = t.expand(user) else { continue };
        let p = p.as_str();
        if SYSTEM_ACCOUNTS.contains(&p) {
            return refuse(
                p,
                "the name of a system account (a login no person should get from their \
                 name at the identity provider)"
                    .into(),
            );
        }
        for other in people.policy.roles.values() {
            for t2 in &other.principals {
                if !t2.is_template() {
                    if t2.0 == p && other.name != role.name {
                        return refuse(p, format!("a fixed principal of role {}", other.name));
                    }
                } else if let Some(owner) = t2.user_giving(p)
                    && &owner != user
                {
                    return refuse(
                        p,
                        format!("which {:?} of role {} gives user {owner}", t2.0, other.name),
                    );
                }
            }
        }
    }
    Ok(())
}
