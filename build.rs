//! Build script: records the git commit the binary is built from, which
//! `countersign --version` prints (`countersign 0.1.0 (abc123def456)`), and its date,
//! which the manual pages carry (`countersign man`).
//!
//! The commit comes from `COUNTERSIGN_GIT_COMMIT` when set (a build without `.git`, such
//! as the container image's, can pass it in), else from `git rev-parse --short=12 HEAD`
//! when this crate is the top of a git checkout, else it is `unknown` (a source tarball,
//! no git installed); so is the date without git. The build never fails for want of them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=COUNTERSIGN_GIT_COMMIT");
    let checkout = checkout();
    let given = std::env::var("COUNTERSIGN_GIT_COMMIT").ok();
    let commit = given
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(|| git(checkout.as_deref()?, &["rev-parse", "--short=12", "HEAD"]));
    let date = checkout
        .as_deref()
        .and_then(|dir| git(dir, &["show", "-s", "--format=%cs", "HEAD"]));
    let unknown = || "unknown".to_owned();
    println!(
        "cargo:rustc-env=COUNTERSIGN_GIT_COMMIT={}",
        commit.unwrap_or_else(unknown)
    );
    println!(
        "cargo:rustc-env=COUNTERSIGN_GIT_DATE={}",
        date.unwrap_or_else(unknown)
    );
}

/// This crate's folder when it is the top of a git checkout, after asking cargo to run
/// the script again when HEAD moves; `None` otherwise (a tarball unpacked inside some
/// other repository must not take that repository's commit).
fn checkout() -> Option<PathBuf> {
    let here = std::fs::canonicalize(std::env::var_os("CARGO_MANIFEST_DIR")?).ok()?;
    let top = std::fs::canonicalize(git(&here, &["rev-parse", "--show-toplevel"])?).ok()?;
    if top != here {
        return None;
    }
    for path in watched(&here) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Some(here)
}

/// HEAD, the branch it names (its loose ref, or the folder a new loose ref appears in
/// when the branch is packed) and `packed-refs`: what a commit or a checkout rewrites.
/// Only files that exist: cargo reruns the script on every build for a missing one.
fn watched(dir: &Path) -> Vec<PathBuf> {
    let git_path = |p: &str| git(dir, &["rev-parse", "--git-path", p]).map(|g| dir.join(g));
    let mut paths = vec![git_path("HEAD"), git_path("packed-refs")];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        let loose = git_path(&branch);
        let parent = loose
            .as_ref()
            .and_then(|l| l.parent().map(Path::to_path_buf));
        paths.push(if loose.as_ref().is_some_and(|l| l.exists()) {
            loose
        } else {
            parent
        });
    }
    paths.into_iter().flatten().filter(|p| p.exists()).collect()
}

/// The trimmed output of a successful `git` command in `dir`.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}
