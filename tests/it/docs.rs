//! The docs hold together: every relative link in README.md and docs/*.md names a file
//! that exists, and every `#anchor` a heading of its target (GitHub's slug rules).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every Markdown file in docs/.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    let docs = std::fs::read_dir(root().join("docs")).expect("docs/");
    for entry in docs {
        let path = entry.expect("docs/ entry").path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The text outside fenced code blocks, one paragraph at a time, with every inline code
/// span replaced by `code` (a link inside backticks is no link; a link whose text is
/// code still is).
fn paragraphs(markdown: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push(String::new());
            continue;
        }
        if in_fence {
            continue;
        }
        if line.trim().is_empty() {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out.iter().map(|p| without_code_spans(p)).collect()
}

fn without_code_spans(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        let close = (i + run..chars.len()).find(|&j| {
            chars[j..].iter().take_while(|&&c| c == '`').count() == run
                && (j == 0 || chars[j - 1] != '`')
        });
        match close {
            Some(j) => {
                out.push_str("code");
                i = j + run;
            }
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}

/// The targets of the inline links `[text](target)` (and images) in a paragraph.
fn link_targets(paragraph: &str) -> Vec<String> {
    let chars: Vec<char> = paragraph.chars().collect();
    let mut out = Vec::new();
    for start in 0..chars.len() {
        if chars[start] != '[' || (start > 0 && chars[start - 1] == '\\') {
            continue;
        }
        let mut depth = 0;
        let Some(end) = (start..chars.len()).find(|&j| {
            match chars[j] {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            depth == 0
        }) else {
            continue;
        };
        if chars.get(end + 1) != Some(&'(') {
            continue;
        }
        let Some(close) = (end + 2..chars.len()).find(|&j| chars[j] == ')') else {
            continue;
        };
        let inside: String = chars[end + 2..close].iter().collect();
        if let Some(target) = inside.split_whitespace().next() {
            out.push(target.to_owned());
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_`
/// dropped, spaces as `-`; a repeated heading gets `-1`, `-2`, ...
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if in_fence || !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    }
    out
}

/// What is wrong with one link of `page`, if anything.
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let file = if path.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap_or(Path::new(".")).join(path)
    };
    if !file.exists() {
        return Some(format!("no file {}", file.display()));
    }
    if anchor.is_empty() || file.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    (!anchors(&text).contains(anchor)).then(|| format!("no heading #{anchor}"))
}

#[test]
fn every_relative_link_and_anchor_in_the_docs_resolves() {
    let mut bad = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("read a page");
        let name = page
            .strip_prefix(root())
            .unwrap_or(&page)
            .display()
            .to_string();
        for paragraph in paragraphs(&text) {
            for target in link_targets(&paragraph) {
                checked += 1;
                if let Some(why) = broken(&page, &target) {
                    bad.push(format!("{name}: ({target}): {why}"));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "found only {checked} links: is the parser broken?"
    );
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn the_link_checker_reads_markdown_as_github_does() {
    assert_eq!(
        slug("`[[roles.NAME.approval_steps]]`"),
        "rolesnameapproval_steps"
    );
    assert_eq!(
        slug("HTTPS, directly or behind a reverse proxy"),
        "https-directly-or-behind-a-reverse-proxy"
    );
    let text = "# A\n## A\n```\n# not a heading\n```\n### `[ssh]`\n";
    let found: Vec<String> = anchors(text).into_iter().collect();
    assert_eq!(found, ["a", "a-1", "ssh"]);
    let p = paragraphs("see [`[ssh]`](c.md#ssh) and `[x](not-a-link.md)`,\n[b](d.md)\n");
    assert_eq!(link_targets(&p[0]), ["c.md#ssh", "d.md"]);
}

/// Every `.rs` file of the crate and the bench, as text.
fn sources() -> String {
    let mut text = String::new();
    let mut todo: Vec<PathBuf> = ["src", "tests", "bench"]
        .iter()
        .map(|d| root().join(d))
        .collect();
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    text
}

/// SECURITY.md names, for each threat, the tests that fail if the defence breaks
/// (`module::test_name`): each must exist, or the threat is guarded by nothing.
#[test]
fn every_test_the_security_model_names_exists() {
    let doc = std::fs::read_to_string(root().join("docs/SECURITY.md")).expect("SECURITY.md");
    let code = sources();
    let mut missing = Vec::new();
    let mut named = 0;
    for span in doc.split('`').skip(1).step_by(2) {
        let is_path = span.contains("::")
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':');
        let Some(last) = span.rsplit("::").next().filter(|_| is_path) else {
            continue;
        };
        // A test's name, not a module's: tests are named by what they show.
        if last.matches('_').count() < 3 {
            continue;
        }
        named += 1;
        if !code.contains(&format!("fn {last}(")) {
            missing.push(span.to_owned());
        }
    }
    assert!(named > 50, "only {named} test names found in SECURITY.md");
    assert!(
        missing.is_empty(),
        "SECURITY.md names tests that do not exist: {missing:?}"
    );
}
