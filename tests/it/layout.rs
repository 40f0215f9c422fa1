//! The shape of the code, kept as code changes (docs/ARCHITECTURE.md says why each holds):
//! no storage library outside the store, front ends that never import one another, the
//! service's time only from its clock, and no source file past about 450 lines.
//!
//! Formatting (`rustfmt` formats every line, nothing it gives up on) is checked by
//! `scripts/check-format.sh`, which CI runs.

use std::path::{Path, PathBuf};

/// Longest a source file may grow before it is split along its seams.
const MAX_LINES: usize = 450;

/// Every `.rs` file under `dir` (relative to the crate root), sorted.
fn rust_files(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let mut todo = vec![root.join(dir)];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The path relative to the crate root, with `/`.
fn relative(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// The lines of `path` outside `#[cfg(test)]` modules and test files, numbered from 1:
/// what the shipped code says. A `#[cfg(test)] mod tests;` line declares a file the
/// caller skips by its name; an inline `#[cfg(test)] mod x { ... }` ends at the file's
/// end (tests come last in this code base).
fn shipped_lines(path: &Path) -> Vec<(usize, String)> {
    let rel = relative(path);
    if rel.ends_with("/tests.rs") || rel.contains("/tests/") {
        return Vec::new();
    }
    let text = std::fs::read_to_string(path).expect("read source");
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((i, line)) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|(_, next)| {
                next.trim_start().starts_with("mod ") && next.ends_with('{')
            })
        {
            break;
        }
        out.push((i + 1, line.to_owned()));
    }
    out
}

/// `file:line: text` for each line of the shipped code of `files` that `bad` flags.
fn offending(files: &[PathBuf], bad: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for path in files {
        for (n, line) in shipped_lines(path) {
            let code = line.split("//").next().unwrap_or_default();
            if bad(code) {
                found.push(format!("{}:{n}: {}", relative(path), line.trim()));
            }
        }
    }
    found
}

#[test]
fn only_the_store_knows_the_storage_library() {
    let outside: Vec<PathBuf> = rust_files("src")
        .into_iter()
        .filter(|p| {
            let rel = relative(p);
            rel != "src/store.rs" && !rel.starts_with("src/store/")
        })
        .collect();
    let found = offending(&outside, |code| code.contains("rusqlite"));
    assert!(
        found.is_empty(),
        "rusqlite outside src/store (put the query behind store::Tx):\n{}",
        found.join("\n")
    );
}

/// Whether `code` (whitespace removed) names the module `other` of the crate: a path
/// `crate::other::...`, one reached through `super::`, or a grouped
/// `use crate::{..., other::...}`.
fn reaches(code: &str, other: &str) -> bool {
    let ends = ["::", ";", ",", "}"];
    let path_to = |prefix: &str| {
        code.match_indices(&format!("{prefix}{other}"))
            .any(|(i, m)| ends.iter().any(|e| code[i + m.len()..].starts_with(e)))
    };
    let grouped = code.match_indices("crate::{").any(|(i, m)| {
        code[i + m.len()..]
            .split([',', '{', '}', ';'])
            .any(|part| part == other || part.starts_with(&format!("{other}::")))
    });
    path_to("crate::") || path_to("super::") || grouped
}

/// The shipped code of `path` as statements: its lines joined and cut at `;`, each
/// without whitespace, so that an import rustfmt wrapped over lines reads as one.
fn statements(path: &Path) -> Vec<String> {
    let text: String = shipped_lines(path)
        .into_iter()
        .map(|(_, line)| line.split("//").next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(|s| s.chars().filter(|c| !c.is_whitespace()).collect::<String>() + ";")
        .collect()
}

#[test]
fn front_ends_never_import_one_another() {
    let front_ends = ["api", "ssh", "cli"];
    let mut found = Vec::new();
    for fe in front_ends {
        let files = rust_files("src").into_iter().filter(|p| {
            let rel = relative(p);
            rel == format!("src/{fe}.rs") || rel.starts_with(&format!("src/{fe}/"))
        });
        for path in files {
            for code in statements(&path) {
                // Another front end, or the storage and state behind the service.
                let bad = ["store", "state"]
                    .iter()
                    .chain(front_ends.iter().filter(|o| **o != fe))
                    .find(|other| reaches(&code, other));
                if let Some(other) = bad {
                    found.push(format!("{}: reaches {other}: {code}", relative(&path)));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a front end imports another front end, the store or the state (share a neutral \
         module, or go through the service):\n{}",
        found.join("\n")
    );
}

/// The import check sees every form an import takes, wrapped by rustfmt or not.
#[test]
fn the_import_check_sees_wrapped_grouped_and_relative_imports() {
    let flat = |code: &str| {
        code.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
    };
    for code in [
        "use crate::ssh::host_key;",
        "use crate::{\n    config::Config,\n    ssh::host_key,\n};",
        "use crate::{config, ssh};",
        "use super::super::ssh::context;",
        "let x = crate::ssh::serve(a);",
    ] {
        assert!(reaches(&flat(code), "ssh"), "{code}");
    }
    for code in [
        "use crate::service::ssh_like;",
        "use crate::sshd;",
        "use super::ssh_key;",
    ] {
        assert!(!reaches(&flat(code), "ssh"), "{code}");
    }
}

#[test]
fn the_service_reads_time_only_from_its_clock() {
    let files: Vec<PathBuf> = ["src/service.rs", "src/state.rs"]
        .iter()
        .map(|f| Path::new(env!("CARGO_MANIFEST_DIR")).join(f))
        .chain(rust_files("src/service"))
        .chain(rust_files("src/state"))
        .chain(rust_files("src/audit"))
        .chain(rust_files("src/store"))
        .collect();
    let found = offending(&files, |code| {
        code.contains("Utc::now") || code.contains("SystemTime::now")
    });
    assert!(
        found.is_empty(),
        "the service reads the system time (use the clock it is given):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_outgrows_its_seams() {
    let mut long = Vec::new();
    for dir in ["src", "tests", "bench"] {
        for path in rust_files(dir) {
            let lines = std::fs::read_to_string(&path)
                .expect("read source")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{}: {lines} lines", relative(&path)));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (split them along their seams):\n{}",
        long.join("\n")
    );
}

/// The checks above would pass on an empty tree: make sure they read the real one.
#[test]
fn the_layout_checks_see_the_code() {
    let src = rust_files("src");
    assert!(src.iter().any(|p| relative(p) == "src/store/tx.rs"));
    let store = [Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store.rs")];
    assert!(!offending(&store, |code| code.contains("rusqlite")).is_empty());
    let service = rust_files("src/service");
    assert!(!offending(&service, |code| code.contains("self.now()")).is_empty());
}
