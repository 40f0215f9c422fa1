//! Whole configs that load: the full shape, the shipped example, the defaults, and where
//! relative paths resolve.

use super::*;

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
    let c = ok(&with_role_line("max_ttl = \"10m\""));
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

#[test]
fn a_syntax_error_says_where_on_one_line() {
    let text = format!("{FULL}\n[users.zed\ngroups = [\"dev\"]\n");
    let line = text.lines().count() - 1;
    let msg = err(&text);
    assert!(
        msg.contains(&format!("line {line}, column 11 (`users.zed`): "))
            && msg.contains("expected `]`"),
        "{msg}"
    );
    assert!(!msg.contains('\n') && !msg.contains(" | "), "{msg}");
    // The line is named by its key; its text is not copied into the message.
    let text = full_edit("data_dir = \"data\"", "data_dir = \"data\"\ntimezone = 7");
    let msg = err(&text);
    assert!(msg.contains("(`timezone`): invalid type"), "{msg}");
    let msg = err(&format!("{FULL}\n[servers]\nlisten = \"x\"\n"));
    assert!(
        msg.contains("unknown field `servers`") && msg.contains("line "),
        "{msg}"
    );
}

#[test]
fn a_syntax_error_never_quotes_a_value_from_the_file() {
    let secret = "Hunter2Secret";
    for (from, to) in [
        // A type error: the parser's message names the value.
        (
            "data_dir = \"data\"",
            "data_dir = \"data\"\ntimezone = 12345678901234".to_owned(),
        ),
        (
            "data_dir = \"data\"",
            format!("data_dir = \"data\"\nmax_connections = \"{secret}\""),
        ),
        // A value that says "expected" itself.
        (
            "data_dir = \"data\"",
            format!("data_dir = \"data\"\nmax_connections = \"x expected {secret}\""),
        ),
        // A line inside a multi-line string, with an `=` in it.
        (
            "data_dir = \"data\"",
            format!("data_dir = \"data\"\ntimezone = \"\"\"\npg://ca:{secret}@db?ssl=\\q\"\"\""),
        ),
    ] {
        let text = full_edit(from, &to);
        let msg = err(&text);
        assert!(
            !msg.contains(secret) && !msg.contains("12345678901234"),
            "{msg}"
        );
        assert!(msg.contains("line "), "{msg}");
    }
    // What helps is kept: the unknown key, and the names the parser expected.
    let msg = err(&full_edit(
        "data_dir = \"data\"",
        "data_dir = \"data\"\nport = 3",
    ));
    assert!(
        msg.contains("unknown field `port`, expected one of `listen`"),
        "{msg}"
    );
}
