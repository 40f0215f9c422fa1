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

#[test]
fn front_ends_never_import_one_another() {
    let front_ends = ["api", "ssh", "cli"];
    let mut found = Vec::new();
    for fe in front_ends {
        let files: Vec<PathBuf> = rust_files("src")
            .into_iter()
            .filter(|p| {
                let rel = relative(p);
                rel == format!("src/{fe}.rs") || rel.starts_with(&format!("src/{fe}/"))
            })
            .collect();
        // The service, not the storage or the state behind it.
        found.extend(offending(&files, |code| {
            code.contains("crate::store") || code.contains("crate::state")
        }));
        for other in front_ends.iter().filter(|o| **o != fe) {
            let path = format!("crate::{other}");
            let grouped = |code: &str| {
                code.contains("crate::{")
                    && code
                        .split(['{', '}', ',', ' '])
                        .any(|part| part == *other || part.starts_with(&format!("{other}::")))
            };
            found.extend(offending(&files, |code| {
                code.contains(&format!("{path}::"))
                    || code.contains(&format!("{path};"))
                    || code.contains(&format!("{path} "))
                    || grouped(code)
            }));
        }
    }
    assert!(
        found.is_empty(),
        "a front end imports another front end, the store or the state (share a neutral \
         module, or go through the service):\n{}",
        found.join("\n")
    );
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
