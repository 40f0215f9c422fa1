//! The public error codes and their documentation agree: every code an answer can carry
//! (`countersign::error_code::ErrorCode`, the one list answers are built from) is in the
//! docs, and the docs name no code the server does not have.

use std::collections::BTreeSet;

use countersign::error_code::ErrorCode;

/// The document whose `Errors` heading is followed by the API's error table
/// (`| HTTP | code | when |`, each code in backticks in the second column).
// When docs/api.md lands (the README split of issue 13), this becomes "docs/api.md".
const API_ERRORS_DOC: &str = "docs/api.md";

/// The document that names the codes only the SSH front door prints.
// When docs/ssh.md lands (the README split of issue 13), this becomes "docs/ssh.md".
const SSH_DOC: &str = "docs/ssh.md";

fn read(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The codes in the second column of the first table under the heading `Errors` (at any
/// level): every `backticked` word of the cell, so `` `internal` / `audit_broken` `` is two.
fn error_table_codes(markdown: &str) -> BTreeSet<String> {
    let mut lines = markdown.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == "Errors")
        .expect("a heading `Errors`");
    let table: Vec<&str> = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "no table under `Errors`");
    let header: Vec<&str> = table[0].split('|').map(str::trim).collect();
    assert_eq!(header.get(2), Some(&"code"), "second column is not `code`");
    table[2..]
        .iter()
        .filter_map(|row| row.split('|').nth(2))
        .flat_map(backticked)
        .collect()
}

/// The `backticked` words of `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn names(codes: &[ErrorCode]) -> BTreeSet<String> {
    codes.iter().map(|c| c.as_str().to_owned()).collect()
}

#[test]
fn the_api_error_table_lists_exactly_the_codes_answers_carry() {
    let documented = error_table_codes(&read(API_ERRORS_DOC));
    let answered = names(ErrorCode::API);
    let undocumented: Vec<_> = answered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "codes missing from the error table of {API_ERRORS_DOC}: {undocumented:?}"
    );
    let unknown: Vec<_> = documented.difference(&answered).collect();
    assert!(
        unknown.is_empty(),
        "{API_ERRORS_DOC} documents codes no answer carries: {unknown:?}"
    );
}

#[test]
fn the_codes_only_the_ssh_front_door_prints_are_documented() {
    let doc = read(SSH_DOC);
    let mut lines = doc.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("Codes only the SSH front door prints"))
        .expect("the SSH-only codes table");
    let listed: BTreeSet<String> = lines
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(backticked)
        .collect();
    assert_eq!(
        listed,
        names(ErrorCode::SSH_ONLY),
        "{SSH_DOC}'s table of SSH-only codes and the code disagree"
    );
}

#[test]
fn the_table_parser_reads_codes_from_the_second_column_only() {
    let doc = "# Errors\nintro\n\n| HTTP | code | when |\n|---|---|---|\n\
               | 400 | `invalid_request` | a `bad` thing |\n\
               | 500 | `internal` / `audit_broken` | x |\n| 431 | — | no body |\n\nafter\n";
    let got: Vec<String> = error_table_codes(doc).into_iter().collect();
    assert_eq!(got, ["audit_broken", "internal", "invalid_request"]);
}
