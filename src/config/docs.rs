//! The config keys the code accepts, checked against `docs/configuration.md`.
//!
//! The list of keys is not written by hand: serde knows every field of the file's shape
//! (`raw.rs`, all `deny_unknown_fields`) and names them all when it refuses an unknown
//! one. So the test offers a probe key at every level of the file and reads the keys back
//! from the refusal, going down into every key whose value is itself a table: a section
//! (`[ssh]`), a map of sections (`[users.NAME]`) or an array of tables (`[[conflicts]]`).
//! A key added to `raw.rs` therefore fails this test until it is documented, and a key
//! documented but no longer in the code fails it too.

use std::collections::BTreeSet;

use toml::{Table, Value};

use super::raw::RawConfig;

/// A key no struct in `raw.rs` has.
const PROBE: &str = "zz_probe";

/// How a key holds tables, which decides the section name it is documented under.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `[key]`
    Table,
    /// `[[key]]`
    Array,
    /// `[key.NAME]`
    Map,
}

/// `(section, key)`, e.g. `("[roles.NAME]", "max_ttl")`.
type Keys = BTreeSet<(String, String)>;

fn table(key: &str, value: Value) -> Value {
    Value::Table(Table::from_iter([(key.to_owned(), value)]))
}

/// A whole config file with the probe key at the end of `path`.
fn document(path: &[(String, Shape)]) -> Value {
    path.iter()
        .rev()
        .fold(table(PROBE, Value::Integer(1)), |inner, (key, shape)| {
            let value = match shape {
                Shape::Table => inner,
                Shape::Array => Value::Array(vec![inner]),
                Shape::Map => table("NAME", inner),
            };
            table(key, value)
        })
}

/// The keys serde accepts at the end of `path`, or `None` if no table may sit there.
fn keys_at(path: &[(String, Shape)]) -> Option<Vec<String>> {
    let error = document(path).try_into::<RawConfig>().err()?;
    let expected = error
        .message()
        .strip_prefix(&format!("unknown field `{PROBE}`, "))?;
    // "expected one of `a`, `b`", "expected `a` or `b`", "there are no fields"
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

fn section_name(path: &[(String, Shape)]) -> String {
    let mut name = Vec::new();
    for (key, shape) in path {
        name.push(key.as_str());
        if let Shape::Map = shape {
            name.push("NAME");
        }
    }
    match path.last() {
        None => "(top level)".to_owned(),
        Some((_, Shape::Array)) => format!("[[{}]]", name.join(".")),
        Some(_) => format!("[{}]", name.join(".")),
    }
}

/// Every `(section, key)` whose value is not a table, from the top of the file down.
fn code_keys(path: &mut Vec<(String, Shape)>, out: &mut Keys) {
    let keys = keys_at(path).expect("a table sits at this path");
    for key in keys {
        let mut nested = false;
        for shape in [Shape::Table, Shape::Array, Shape::Map] {
            path.push((key.clone(), shape));
            if keys_at(path).is_some() {
                code_keys(path, out);
                nested = true;
            }
            path.pop();
            if nested {
                break;
            }
        }
        if !nested {
            out.insert((section_name(path), key));
        }
    }
}

/// The keys `docs/configuration.md` documents, in the format its opening comment states:
/// a heading that is a section name in backticks, then a table whose first column is
/// `key` and whose rows start with the key in backticks.
fn documented_keys(markdown: &str) -> Keys {
    let mut out = Keys::new();
    let mut section: Option<String> = None;
    let mut in_key_table = false;
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            let heading = line.trim_start_matches('#').trim();
            section = heading
                .strip_prefix('`')
                .and_then(|h| h.strip_suffix('`'))
                .filter(|h| h.starts_with('['))
                .map(str::to_owned);
            in_key_table = false;
            continue;
        }
        if !line.starts_with('|') {
            in_key_table = false;
            continue;
        }
        let first = line[1..].split('|').next().unwrap_or_default().trim();
        if first == "key" {
            in_key_table = true;
            continue;
        }
        let key = first.strip_prefix('`').and_then(|k| k.strip_suffix('`'));
        if let (true, Some(section), Some(key)) = (in_key_table, &section, key) {
            out.insert((section.clone(), key.to_owned()));
        }
    }
    out
}

fn show(keys: &Keys) -> String {
    keys.iter()
        .map(|(section, key)| format!("\n  {section} {key}"))
        .collect()
}

#[test]
fn the_probe_finds_every_kind_of_section() {
    let mut keys = Keys::new();
    code_keys(&mut Vec::new(), &mut keys);
    for (section, key) in [
        ("[server]", "listen"),
        ("[ssh]", "auth_timeout"),
        ("[users.NAME]", "ssh_keys"),
        ("[roles.NAME]", "max_ttl"),
        ("[[roles.NAME.approval_steps]]", "approvers"),
        ("[[conflicts]]", "reason"),
    ] {
        let pair = (section.to_owned(), key.to_owned());
        assert!(
            keys.contains(&pair),
            "{section} {key} not found in{}",
            show(&keys)
        );
    }
    assert!(
        !keys.iter().any(|(_, key)| key == "approval_steps"),
        "approval_steps holds tables, so it is a section of its own"
    );
}

#[test]
fn every_config_key_is_documented_and_nothing_else() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let markdown = std::fs::read_to_string(path).expect("docs/configuration.md");
    let documented = documented_keys(&markdown);
    let mut code = Keys::new();
    code_keys(&mut Vec::new(), &mut code);
    let missing: Keys = code.difference(&documented).cloned().collect();
    let stale: Keys = documented.difference(&code).cloned().collect();
    assert!(
        missing.is_empty(),
        "config keys the code accepts but docs/configuration.md does not document \
         (add a row to the section's key table):{}",
        show(&missing)
    );
    assert!(
        stale.is_empty(),
        "keys docs/configuration.md documents but the code does not accept:{}",
        show(&stale)
    );
}
