//! `[server]`, `[ca]` and `[requests]`: defaults, bounds, and the refusals naming the key.

use super::*;

#[test]
fn backdate_zero_is_allowed_and_over_an_hour_is_not() {
    for zero in ["0s", "0"] {
        let c = ok(&format!("[ca]\nbackdate = \"{zero}\"\n"));
        assert_eq!(c.ca.backdate, Duration::ZERO);
    }
    refused_all(&[
        ("[ca]\nbackdate = \"2h\"\n", &["ca.backdate"]),
        ("[ca]\nbackdate = \"soon\"\n", &["ca.backdate"]),
    ]);
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
    refused_all(&[
        (
            "[requests]\nrevocation_grace = \"1d 1s\"\n",
            &["requests.revocation_grace", "1day"],
        ),
        (
            "[requests]\nrevocation_grace = \"soon\"\n",
            &["requests.revocation_grace"],
        ),
    ]);
}

#[test]
fn server_limits_default_and_are_bounded() {
    let c = ok("");
    assert_eq!(c.server.limits, Limits::default());
    assert_eq!(c.server.limits.request_timeout, Duration::from_secs(30));
    let c = ok(
        "[server]\nmax_header_bytes = 4096\nrequest_timeout = \"5s\"\n\
                max_concurrent_requests = 8\nauth_failures_per_token = 3\n\
                auth_failure_window = \"1m\"\n",
    );
    let l = &c.server.limits;
    assert_eq!(l.max_header_bytes, 4096);
    assert_eq!(l.request_timeout, Duration::from_secs(5));
    assert_eq!(l.max_concurrent_requests, 8);
    assert_eq!(l.auth_failures_per_token, 3);
    assert_eq!(l.auth_failure_window, Duration::from_secs(60));
    assert_eq!(
        ok("[server]\nmax_connections_per_address = 8\n")
            .server
            .limits
            .max_connections_per_address,
        8
    );
    for (line, key) in [
        ("max_header_bytes = 10", "server.max_header_bytes"),
        ("request_timeout = \"1h\"", "server.request_timeout"),
        ("max_connections = 0", "server.max_connections"),
        (
            "max_connections_per_address = 0",
            "server.max_connections_per_address",
        ),
        (
            "auth_failures_per_address = 0",
            "server.auth_failures_per_address",
        ),
    ] {
        refused(&format!("[server]\n{line}\n"), &[key]);
    }
}

#[test]
fn trusted_proxies_are_addresses_or_networks() {
    assert!(ok("").server.limits.trusted_proxies.is_empty());
    let c = ok(&proxies(
        "\"10.0.0.5\", \"10.1.0.0/16\", \"::1\", \"2001:db8::/64\"",
    ));
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
    refused_all(&[
        (
            proxies("\"proxy.example.com\""),
            &["server.trusted_proxies", "proxy.example.com"],
        ),
        (proxies("\"10.0.0.0/33\""), &["server.trusted_proxies"]),
        // One host with its netmask would trust its whole network; all addresses, everyone.
        (
            proxies("\"10.0.0.5/24\""),
            &["server.trusted_proxies", "host bits", "10.0.0.0/24"],
        ),
        (
            proxies("\"0.0.0.0/0\""),
            &["server.trusted_proxies", "every address"],
        ),
        (
            proxies("\"::/0\""),
            &["server.trusted_proxies", "every address"],
        ),
    ]);
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
            &proxies(&format!("\"{too_wide}\"")),
            &["server.trusted_proxies", too_wide, limit],
        );
    }
    let c = ok(&proxies("\"10.0.0.0/8\", \"2001:db8::/32\""));
    assert_eq!(c.server.limits.trusted_proxies.len(), 2);
    // source_address shares the parser but not the limit: a role may span any network.
    let c = ok(&with_role_line(
        "source_address = [\"0.0.0.0/1\", \"2000::/3\"]",
    ));
    assert_eq!(c.policy.roles[&r("x")].source_address.len(), 2);
}

/// A `[server]` section with `trusted_proxies = [list]`.
fn proxies(list: &str) -> String {
    format!("[server]\ntrusted_proxies = [{list}]\n")
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
    refused_all(&[
        (
            "[ca]\npassphrase_file = \"$HOME/pass\"\n",
            &["ca.passphrase_file", "CREDENTIALS_DIRECTORY"],
        ),
        (
            "[ca]\npassphrase_file = \"${CREDENTIALS_DIRECTORY}/../x\"\n",
            &["ca.passphrase_file"],
        ),
    ]);
}

#[test]
fn agent_needs_its_public_key_and_excludes_a_passphrase() {
    let c = ok("[ca]\nagent = true\nagent_public_key = \"ca.pub\"\n");
    assert!(c.ca.agent);
    assert_eq!(c.ca.agent_public_key, Some("/tmp/data/ca.pub".into()));
    refused_all(&[
        ("[ca]\nagent = true\n", &["ca.agent_public_key", "required"]),
        (
            "[ca]\nagent = true\nagent_public_key = \"p\"\npassphrase_file = \"x\"\n",
            &["ca.passphrase_file"],
        ),
        (
            "[ca]\nagent_public_key = \"p\"\n",
            &["ca.agent_public_key", "agent = true"],
        ),
    ]);
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
        warned(&c, &["plain HTTP on 0.0.0.0:7070"]),
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
    refused_all(&[
        ("[server]\ntls_cert = \"c.pem\"\n", &["server.tls_key"]),
        ("[server]\ntls_key = \"k.pem\"\n", &["server.tls_cert"]),
    ]);
}

#[test]
fn bad_listen_address_is_an_error() {
    refused("[server]\nlisten = \"localhost\"\n", &["server.listen"]);
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
                "[server]\nlisten = \"{server}\"\nallow_plain_http = true\n\
                 [ssh]\nlisten = \"{ssh}\"\n"
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

#[test]
fn metrics_need_a_port_of_their_own_and_log_format_is_text_or_json() {
    assert_eq!(ok("").metrics, None);
    let c = ok("[metrics]\nlisten = \"127.0.0.1:9464\"\n");
    assert_eq!(
        c.metrics.map(|m| m.listen.to_string()),
        Some("127.0.0.1:9464".to_owned())
    );
    let public = ok("[metrics]\nlisten = \"0.0.0.0:9464\"\n");
    assert!(
        public.warnings.iter().any(|w| w.contains("metrics.listen")),
        "{:?}",
        public.warnings
    );
    assert_eq!(ok("").server.shutdown_delay, Duration::ZERO);
    let delay = ok("[server]\nshutdown_delay = \"15s\"\n")
        .server
        .shutdown_delay;
    assert_eq!(delay, Duration::from_secs(15));
    assert_eq!(ok("").server.log_format, LogFormat::Text);
    let json = ok("[server]\nlog_format = \"json\"\n");
    assert_eq!(json.server.log_format, LogFormat::Json);
    refused_all(&[
        ("[metrics]\n", &["metrics.listen", "required"][..]),
        ("[metrics]\nlisten = \"nine\"\n", &["metrics.listen"]),
        (
            "[metrics]\nlisten = \"127.0.0.1:7070\"\n",
            &["metrics.listen", "[server] listen"],
        ),
        (
            "[ssh]\nlisten = \"127.0.0.1:2222\"\n[metrics]\nlisten = \"0.0.0.0:2222\"\n",
            &["metrics.listen", "[ssh] listen"],
        ),
        ("[metrics]\nport = 9464\n", &["port"]),
        (
            "[server]\nlog_format = \"xml\"\n",
            &["server.log_format", "json"],
        ),
        (
            "[server]\nshutdown_delay = \"10m\"\n",
            &["server.shutdown_delay", "at most"],
        ),
    ]);
}
