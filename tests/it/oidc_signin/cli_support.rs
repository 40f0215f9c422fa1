//! Running the `countersign` binary from the sign-in tests.

use std::path::Path;

/// The CLI binary with `home` as its HOME and no token in its environment, as on a
/// desktop (a display, not inside SSH): `login` picks the loopback flow.
pub fn cli(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_countersign"));
    cmd.args(args)
        .env("HOME", home)
        .env("DISPLAY", ":0")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("SSH_CONNECTION")
        .env_remove("SSH_TTY")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("COUNTERSIGN_TOKEN");
    cmd
}

/// Runs a CLI command to its end, off the test's one thread (the server runs there).
pub async fn run_cli(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Starts a CLI command that prints a sign-in address first; returns it running, that
/// address, and the rest of its output to read.
pub async fn start_cli(
    mut cmd: std::process::Command,
) -> (
    std::process::Child,
    String,
    std::io::BufReader<std::process::ChildStdout>,
) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (line, rest) = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        (line.trim().to_owned(), reader)
    })
    .await
    .unwrap();
    (child, line, rest)
}

/// Starts a CLI command that prints a sign-in address on stderr (a command whose stdout
/// is its own answer, such as `approve`); returns it running and that address. The rest
/// of stderr is drained in the background.
pub async fn start_cli_stderr(mut cmd: std::process::Command) -> (std::process::Child, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("the command printed no address");
            }
            if line.starts_with("http") {
                let url = line.trim().to_owned();
                std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
                return url;
            }
        }
    })
    .await
    .unwrap();
    (child, url)
}
