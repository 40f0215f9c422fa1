//! The packaging files agree with one another and with the code: the systemd units
//! (config/*.service, *.timer), the packaged config (config/deb/), the Debian package's
//! metadata (Cargo.toml) and the container recipe (config/Containerfile), which cannot
//! be built here (no registry for base images), so it is checked statically. The .deb is
//! built, installed and purged by `scripts/test-package.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::text;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `Key=Value` settings of a unit file, in order, without comments and sections.
fn settings(unit: &str) -> Vec<(String, String)> {
    read(unit)
        .lines()
        .filter(|l| !l.starts_with(['#', ';', '[']))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The one value of `key` in `unit`.
fn setting(unit: &str, key: &str) -> String {
    let values: Vec<String> = settings(unit)
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{unit}: {key}= {values:?}");
    values[0].clone()
}

/// `[package.metadata.deb]` of Cargo.toml: each asset as (source, destination).
fn deb_assets() -> Vec<(String, String)> {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a[0].as_str().unwrap().to_owned(),
                a[1].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Where the package installs `source` (a destination ending in `/` keeps its name).
fn installed_as(source: &str) -> String {
    let (_, dest) = deb_assets()
        .into_iter()
        .find(|(s, _)| s == source)
        .unwrap_or_else(|| panic!("{source} is no asset of the package"));
    let dest = match dest.strip_suffix('/') {
        Some(dir) => format!(
            "{dir}/{}",
            Path::new(source).file_name().unwrap().to_str().unwrap()
        ),
        None => dest,
    };
    format!("/{dest}")
}

/// The packaged config's `[server] data_dir`.
fn packaged_data_dir() -> String {
    let config: toml::Table = read("config/deb/countersign.toml").parse().unwrap();
    config["server"]["data_dir"].as_str().unwrap().to_owned()
}

#[test]
fn the_ca_unit_runs_the_packaged_binary_and_config_as_its_own_user() {
    let unit = "config/countersign.service";
    let binary = installed_as("target/release/countersign");
    let config = installed_as("config/deb/countersign.toml");
    assert_eq!(binary, "/usr/bin/countersign");
    assert_eq!(
        setting(unit, "ExecStart"),
        format!("{binary} --config {config} serve")
    );
    assert_eq!(
        setting(unit, "ExecReload"),
        format!("{binary} --config {config} reload")
    );
    assert_eq!(setting(unit, "User"), "countersign");
    // The user the package's postinst creates, owner of the folder the unit may write.
    let postinst = read("config/deb/postinst");
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    let data = packaged_data_dir();
    assert!(
        postinst.contains(&format!(
            "install -d -m 0700 -o countersign -g countersign {data}\n"
        )),
        "{postinst}"
    );
    assert_eq!(setting(unit, "ReadWritePaths"), data);
}

#[test]
fn the_ca_unit_is_sandboxed_and_loads_its_secrets_as_credentials() {
    let unit = "config/countersign.service";
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(setting(unit, key), value, "{key}");
    }
    // Names only: systemd looks them up in /etc/credstore/ and skips a missing one, so
    // a config that uses none of them still starts.
    let credentials: Vec<String> = settings(unit)
        .into_iter()
        .filter(|(k, _)| k == "LoadCredential")
        .map(|(_, v)| v)
        .collect();
    assert!(credentials.contains(&"countersign.ca-passphrase".to_owned()));
    assert!(
        credentials.iter().all(|c| !c.contains(['/', ':'])),
        "{credentials:?}"
    );
}

/// systemd's own review of a unit's sandbox (no running systemd needed): its exposure,
/// 0 to 10, stays where it is (measured with systemd 252: the CA's 1.4; the KRL fetch's
/// 1.8 and the host renewal's 1.6, which run as root); dropping a hardening line raises
/// it past the threshold.
#[test]
fn systemd_rates_the_units_well_sandboxed() {
    for (unit, threshold) in [
        ("config/countersign.service", "15"),
        ("config/countersign-krl-sync.service", "19"),
        ("config/countersign-host-renew.service", "19"),
    ] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes"])
            .arg(format!("--threshold={threshold}"))
            .arg(root().join(unit))
            .output()
            .expect("systemd-analyze (Debian's systemd package) runs");
        let report = text(&out.stdout);
        assert!(
            out.status.success(),
            "{unit}: {report}{}",
            text(&out.stderr)
        );
        assert!(report.contains("Overall exposure level"), "{report}");
    }
}

#[test]
fn the_krl_sync_timer_runs_the_sync_once_and_it_writes_only_beside_the_krl() {
    let service = "config/countersign-krl-sync.service";
    let start = setting(service, "ExecStart");
    assert_eq!(
        start,
        "/usr/bin/countersign krl sync --url https://ca.example.com:7070 \
         --out /etc/ssh/countersign.krl --ca-key /etc/ssh/countersign_ca.pub --once"
    );
    assert_eq!(setting(service, "Type"), "oneshot");
    assert_eq!(setting(service, "ReadWritePaths"), "/etc/ssh");
    assert_eq!(setting(service, "ProtectSystem"), "strict");
    let timer = "config/countersign-krl-sync.timer";
    assert_eq!(setting(timer, "OnUnitActiveSec"), "60s");
    assert_eq!(setting(timer, "WantedBy"), "timers.target");
    // Shipped as examples: the URL is the operator's to set.
    for unit in [service, timer] {
        let dest = installed_as(unit);
        assert!(
            dest.starts_with("/usr/share/doc/countersign/examples/"),
            "{dest}"
        );
    }
}

#[test]
fn the_host_renew_timer_renews_daily_and_it_writes_only_in_etc_ssh() {
    let service = "config/countersign-host-renew.service";
    assert_eq!(
        setting(service, "ExecStart"),
        "/usr/bin/countersign host renew --key /etc/ssh/ssh_host_ed25519_key.pub"
    );
    assert_eq!(setting(service, "Type"), "oneshot");
    assert_eq!(
        setting(service, "EnvironmentFile"),
        "/etc/default/countersign-host"
    );
    assert_eq!(setting(service, "ReadWritePaths"), "/etc/ssh");
    assert_eq!(setting(service, "ProtectSystem"), "strict");
    let timer = "config/countersign-host-renew.timer";
    // Daily: a 7d certificate ([host_ca] cert_ttl's default) never has less than 5d left.
    assert_eq!(setting(timer, "OnUnitActiveSec"), "1d");
    assert_eq!(setting(timer, "OnBootSec"), "5min");
    assert_eq!(setting(timer, "WantedBy"), "timers.target");
    for unit in [service, timer] {
        let dest = installed_as(unit);
        assert!(
            dest.starts_with("/usr/share/doc/countersign/examples/"),
            "{dest}"
        );
    }
}

#[test]
fn the_packaged_config_is_the_example_with_its_data_under_var_lib() {
    let example = read("config/countersign.toml");
    let packaged = read("config/deb/countersign.toml");
    let body = |text: &str| {
        let start = text.find("[server]\n").expect("[server]");
        text[start..]
            .lines()
            .filter(|l| !l.starts_with("data_dir "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&packaged), body(&example));
    assert_eq!(packaged_data_dir(), "/var/lib/countersign");
    let out = Command::new(env!("CARGO_BIN_EXE_countersign"))
        .arg("--config")
        .arg(root().join("config/deb/countersign.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn every_asset_of_the_package_exists_or_is_made_by_build_deb() {
    let script = read("scripts/build-deb.sh");
    for (source, _) in deb_assets() {
        if let Some(built) = source.strip_prefix("target/release/") {
            // The binary, and what build-deb.sh has it write next to itself.
            let name = built.rsplit('/').next().unwrap();
            let made = built == "countersign"
                || (built.starts_with("man/") && script.contains("man --out \"$out/man\""))
                || script.contains(&format!("\"$out/{built}\""));
            assert!(
                made,
                "{source}: nothing in scripts/build-deb.sh makes {name}"
            );
        } else if let Some((dir, ext)) = source.split_once("/*") {
            let any = std::fs::read_dir(root().join(dir))
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(ext));
            assert!(any, "{source} matches nothing");
        } else {
            assert!(root().join(&source).is_file(), "{source} does not exist");
        }
    }
}

/// The instructions of a Containerfile, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<(String, String)> {
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(op, rest)| (op.to_uppercase(), rest.trim().to_owned()))
        .collect()
}

/// What the recipe can check without building it: every file it copies from the
/// repository exists (workspace members included: cargo reads their manifests), copies
/// between stages name a stage, and the image runs the binary unprivileged with the
/// packaged config, the data folder as a volume, and the config's port.
#[test]
fn the_containerfile_copies_what_exists_and_runs_unprivileged() {
    let steps = instructions(&read("config/Containerfile"));
    let mut stages = Vec::new();
    let mut copied = Vec::new();
    for (op, args) in &steps {
        let words: Vec<&str> = args.split_whitespace().collect();
        match op.as_str() {
            "FROM" => {
                if let [_, "AS", name] = words[..] {
                    stages.push(name.to_owned());
                }
            }
            "COPY" => {
                let flags: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| w.starts_with("--"))
                    .collect();
                let paths: Vec<&str> = words
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let sources = &paths[..paths.len() - 1];
                match flags.iter().find_map(|f| f.strip_prefix("--from=")) {
                    Some(stage) => assert!(stages.iter().any(|s| s == stage), "COPY {args}"),
                    None => {
                        for source in sources {
                            assert!(root().join(source).exists(), "COPY {source}: no such file");
                            copied.push(source.trim_end_matches('/').to_owned());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    for member in members
        .iter()
        .map(|m| m.as_str().unwrap())
        .filter(|m| *m != ".")
    {
        assert!(
            copied.iter().any(|c| c == member),
            "workspace member {member} not copied"
        );
    }
    for needed in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        assert!(copied.iter().any(|c| c == needed), "{needed} not copied");
    }

    let last = |op: &str| {
        steps
            .iter()
            .rev()
            .find(|(o, _)| o == op)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    };
    let user = last("USER");
    assert!(
        !user.is_empty() && !user.starts_with("root") && !user.starts_with("0"),
        "USER {user}"
    );
    assert_eq!(last("VOLUME"), format!("[\"{}\"]", packaged_data_dir()));
    let config: toml::Table = read("config/deb/countersign.toml").parse().unwrap();
    let listen = config["server"]["listen"].as_str().unwrap();
    let port = listen.rsplit(':').next().unwrap();
    assert!(
        last("EXPOSE").split_whitespace().any(|p| p == port),
        "EXPOSE {} lacks the API's port {port}",
        last("EXPOSE")
    );
    assert!(last("ENV").contains("COUNTERSIGN_CONFIG=/etc/countersign/countersign.toml"));
    assert!(steps.iter().any(|(o, a)| o == "COPY"
        && a.ends_with("config/deb/countersign.toml /etc/countersign/countersign.toml")));
    assert!(
        steps
            .iter()
            .any(|(o, a)| o == "RUN" && a.contains("cargo build --release --locked"))
    );
}
