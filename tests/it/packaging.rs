//! What a package ships from the binary itself: `--version` with the git commit, the
//! shell completions (`countersign completions bash|zsh|fish`, loaded into the real
//! shells) and the manual pages (`countersign man --out DIR`, rendered by the real
//! `man`). The package's files (units, Containerfile, packaged config) are checked in
//! `packaging_files.rs`; the .deb itself by `scripts/test-package.sh`. zsh and fish come
//! from `scripts/install-shells.sh`, which `scripts/test.sh` runs.

use std::path::Path;
use std::process::{Command, Output};

use crate::cli::text;

fn countersign(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_countersign"))
        .args(args)
        .output()
        .expect("countersign runs")
}

/// Runs `program` with `args`, insisting that it exists and succeeds; its stdout.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e} (scripts/install-shells.sh installs zsh and fish)")
        });
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The completion script for `shell`, written to a file in `dir`.
fn completions(shell: &str, dir: &Path) -> String {
    let out = countersign(&["completions", shell]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let path = dir.join(format!("completion.{shell}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn version_names_the_release_and_the_commit_it_was_built_from() {
    let out = countersign(&["--version"]);
    assert!(out.status.success());
    let line = text(&out.stdout);
    let root = env!("CARGO_MANIFEST_DIR");
    let commit = Command::new("git")
        .args(["-C", root, "rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let expected = format!("countersign {} ({commit})\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(line, expected);
    assert_eq!(text(&countersign(&["-V"]).stdout), expected);
}

#[test]
fn bash_completes_commands_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = completions("bash", dir.path());
    run("bash", &["-n", &script]);
    // What bash does on TAB: call the function `complete -p` names with the words so far.
    let complete = |words: &[&str]| {
        let line = format!(
            "source {script}; complete -p countersign >/dev/null || exit 9; \
             COMP_WORDS=({words}); COMP_CWORD={cword}; \
             _countersign countersign '{cur}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            words = words.join(" "),
            cword = words.len() - 1,
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        run("bash", &["-c", &line])
    };
    let offered = complete(&["countersign", "se"]);
    assert_eq!(offered.lines().collect::<Vec<_>>(), ["serve", "session"]);
    assert_eq!(complete(&["countersign", "token", "c"]).trim(), "create");
    assert_eq!(
        complete(&["countersign", "serve", "--acc"]).trim(),
        "--accept-rollback"
    );
}

#[test]
fn zsh_registers_the_completion_for_countersign() {
    let dir = tempfile::tempdir().unwrap();
    let script = completions("zsh", dir.path());
    assert!(
        std::fs::read_to_string(&script)
            .unwrap()
            .starts_with("#compdef countersign\n")
    );
    run("zsh", &["-n", &script]);
    let registered = run(
        "zsh",
        &[
            "-f",
            "-c",
            &format!(
                "autoload -Uz compinit && compinit -u -D && source {script} \
                 && print -r -- $_comps[countersign]"
            ),
        ],
    );
    assert_eq!(registered.trim(), "_countersign");
}

#[test]
fn fish_completes_commands_subcommands_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let script = completions("fish", dir.path());
    run("fish", &["--no-execute", &script]);
    let complete = |line: &str| {
        let out = run(
            "fish",
            &[
                "--no-config",
                "-c",
                &format!("source {script}; complete -C '{line}'"),
            ],
        );
        out.lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("countersign se"), ["serve", "session"]);
    assert_eq!(complete("countersign token c"), ["create"]);
    assert_eq!(complete("countersign serve --acc"), ["--accept-rollback"]);
}

#[test]
fn completions_are_offered_only_for_the_shells_tested_here() {
    let out = countersign(&["completions", "powershell"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("[possible values: bash, zsh, fish]"));
}

#[test]
fn man_writes_a_page_per_command_that_man_renders() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = countersign(&["man", "--out", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let mut names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // One per command and subcommand, each printed as written; no page for `help`.
    assert_eq!(listed.lines().count(), names.len());
    for page in [
        "countersign.1",
        "countersign-serve.1",
        "countersign-token-create.1",
        "countersign-completions.1",
    ] {
        assert!(names.iter().any(|n| n == page), "{page} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");

    let render = |page: &str| {
        let out = Command::new("man")
            .args(["-P", "cat", "-l"])
            .arg(pages.join(page))
            .env("MANWIDTH", "100")
            .output()
            .expect("man runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let serve = render("countersign-serve.1");
    assert!(
        serve.contains("countersign-serve - Run the HTTP API"),
        "{serve}"
    );
    assert!(serve.contains("--accept-rollback"), "{serve}");
    // The footer names the release and its commit, like --version.
    let version = text(&countersign(&["--version"]).stdout);
    assert!(serve.contains(version.trim()), "{serve}");
    let top = render("countersign.1");
    for command in ["serve", "reload", "completions", "man"] {
        assert!(top.contains(&format!("countersign-{command}(1)")), "{top}");
    }
}
