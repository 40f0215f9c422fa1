//! `[host_ca]`.

use super::*;

fn with_host_ca(section: &str) -> String {
    format!("{BASE}\n[host_ca]\n{section}\n")
}

#[test]
fn host_ca_is_off_without_its_section_and_has_defaults() {
    assert!(ok(BASE).host_ca.is_none());
    let c = ok(&with_host_ca(
        r#"allowed_principals = ["*.example.com", "10.0.0.0/8"]"#,
    ));
    let h = c.host_ca.expect("[host_ca]");
    assert_eq!(h.key_file, c.server.data_dir.join("host_ca_key"));
    assert_eq!(h.cert_ttl, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(h.max_ttl, Duration::from_secs(30 * 24 * 3600));
    let names: Vec<String> = h.allowed_principals.iter().map(|p| p.to_string()).collect();
    assert_eq!(names, ["*.example.com", "10.0.0.0/8"]);
    assert!(h.allows(&crate::names::HostPrincipal::parse("web1.example.com").unwrap()));
    assert!(!h.allows(&crate::names::HostPrincipal::parse("example.com").unwrap()));
}

#[test]
fn host_ca_refuses_what_would_weaken_it() {
    for (section, key) in [
        (r#"key_file = "ca_key""#, "host_ca.key_file"),
        (r#"max_ttl = "31d""#, "host_ca.max_ttl"),
        (
            r#"cert_ttl = "10d"
max_ttl = "7d""#,
            "host_ca.cert_ttl",
        ),
        (r#"cert_ttl = "1m""#, "host_ca.cert_ttl"),
        (
            r#"allowed_principals = ["*"]"#,
            "host_ca.allowed_principals[0]",
        ),
        (
            r#"allowed_principals = ["ok.example.com", "web*"]"#,
            "host_ca.allowed_principals[1]",
        ),
        (
            r#"allowed_principals = ["10.0.0.1/8"]"#,
            "host_ca.allowed_principals[0]",
        ),
        (
            r#"allowed_principals = ["Web1"]"#,
            "host_ca.allowed_principals[0]",
        ),
        (r#"allow = ["x"]"#, "unknown field"),
        ("agent = true", "host_ca.agent_public_key"),
        (
            r#"agent_public_key = "host_ca.pub""#,
            "host_ca.agent_public_key",
        ),
        (
            r#"agent = true
agent_public_key = "host_ca.pub"
passphrase_file = "pw""#,
            "host_ca.passphrase_file",
        ),
    ] {
        let e = err(&with_host_ca(section));
        assert!(e.contains(key), "{section}: {e}");
    }
}

#[test]
fn an_empty_allowed_list_loads_with_a_warning() {
    let c = ok(&with_host_ca(""));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("host_ca.allowed_principals is empty")),
        "{:?}",
        c.warnings
    );
}
