//! `countersign login` and `logout`: a session from the company's identity provider,
//! kept as the only line of `~/.config/countersign/session` (mode 0600;
//! `$XDG_CONFIG_HOME` is respected) and used by every client command when
//! `COUNTERSIGN_TOKEN` is not set.
//!
//! The loopback flow: the CLI listens on 127.0.0.1 (a random port), prints the URL to
//! open, and the browser goes to countersign, the identity provider, back to countersign
//! and on to the listener with a one-time code, which the CLI trades, with the verifier
//! of the challenge it sent, for the session token. The token never passes through the
//! browser, and the code is useless to anyone without the verifier. The device flow
//! (`--device`, `login/device.rs`) is for a terminal with no browser beside it.

mod device;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use super::client::Client;

/// How long `login` waits for the browser to come back.
const WAIT: Duration = Duration::from_secs(300);

/// `countersign login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Ask the identity provider to authenticate you again now (what approving,
    /// `keys add` and an admin's acts that give access need after `reauth_required`;
    /// those commands do this by themselves).
    #[arg(long)]
    pub step_up: bool,
    /// Sign in from a browser on another device (RFC 8628 device flow): what `login`
    /// does by itself inside an SSH session or without a display.
    #[arg(long, conflicts_with = "loopback")]
    pub device: bool,
    /// Sign in with a browser on this computer (the CLI listens on 127.0.0.1), even inside
    /// an SSH session or without a display.
    #[arg(long)]
    pub loopback: bool,
}

/// The session file: `$XDG_CONFIG_HOME/countersign/session`, else
/// `~/.config/countersign/session`.
pub(super) fn session_file() -> Option<PathBuf> {
    // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    Some(base.join("countersign").join("session"))
}

/// The server a saved session belongs to: `session.url` beside the session file (the
/// session file itself holds the token alone).
fn server_file(session: &std::path::Path) -> PathBuf {
    session.with_file_name("session.url")
}

/// The server client commands talk to when neither `--url` nor `COUNTERSIGN_URL` says:
/// the one the saved session is for, else `http://127.0.0.1:7070`.
pub(super) fn default_url() -> String {
    saved_session()
        .and_then(|(_, server)| server)
        .unwrap_or_else(|| "http://127.0.0.1:7070".to_owned())
}

/// The session token saved by `login`, if there is one, and the server it is for
/// (`None` if that was not recorded).
pub(super) fn saved_session() -> Option<(String, Option<String>)> {
    let file = session_file()?;
    let text = std::fs::read_to_string(&file).ok()?;
    let token = text.lines().next()?.trim().to_owned();
    let server = std::fs::read_to_string(server_file(&file))
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_owned()))
        .filter(|s| !s.is_empty());
    (!token.is_empty()).then_some((token, server))
}

#[derive(Debug, Deserialize)]
pub(super) struct Session {
    session: String,
    user: String,
    expires_at: String,
}

/// Signs in and saves the session.
pub(super) fn login(url: &str, args: &LoginArgs) -> anyhow::Result<ExitCode> {
    let device = args.device || (!args.loopback && device::no_browser_here());
    sign_in_with(url, args.step_up, device, false)?;
    Ok(ExitCode::SUCCESS)
}

/// `POST path` with `body`; on `reauth_required` (a step-up action with an old or a
/// device-flow session) signs in again by the loopback flow, step-up (the provider
/// authenticates the person again), and retries once. `what` names the act for the
/// messages ("Approving"). With `COUNTERSIGN_TOKEN` set, the error stands: the retry
/// would send that token again.
pub(super) fn post_stepping_up<B: serde::Serialize, T: serde::de::DeserializeOwned>(
    url: &str,
    path: &str,
    body: &B,
    what: &str,
) -> anyhow::Result<T> {
    match Client::from_env(url)?.post(path, body) {
        Err(e) if e.to_string().starts_with("reauth_required:") => {
            if std::env::var("COUNTERSIGN_TOKEN").is_ok_and(|t| !t.trim().is_empty()) {
                return Err(e.context(
                    "COUNTERSIGN_TOKEN holds a session that cannot do this: unset it and run \
                     the command again (it signs in again by itself), or use a fresh session",
                ));
            }
            eprintln!(
                "{what} needs a recent sign-in at the identity provider, with a browser on \
                 this computer: signing in again (the provider may ask for your password)."
            );
            if device::no_browser_here() {
                let front_door = if what == "Approving" {
                    ", or approve over the SSH front door"
                } else {
                    ""
                };
                eprintln!(
                    "No browser here? A session from `login --device` is never enough for \
                     this. Press Ctrl-C and run the command on the computer you sign in \
                     from{front_door}, or forward the port in the address below (`ssh -L \
                     PORT:127.0.0.1:PORT`) and open it there."
                );
            }
            sign_in_with(url, true, false, true)?;
            Client::from_env(url)?.post(path, body)
        }
        other => other,
    }
}

/// Signs in by the device flow or the loopback one, and saves the session; the address
/// to open goes to stdout, or to stderr with `quiet_stdout` (for a command whose stdout
/// is its own answer). The session saved before for the same server is ended there.
fn sign_in_with(url: &str, step_up: bool, device: bool, quiet_stdout: bool) -> anyhow::Result<()> {
    let client = Client::anonymous(url)?;
    let session = if device {
        device::sign_in(&client, step_up, quiet_stdout)?
    } else {
        loopback(&client, step_up, quiet_stdout)?
    };
    let file = session_file().ok_or_else(|| {
        anyhow!("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the session")
    })?;
    let before = saved_session();
    save(&file, &session.session)?;
    save(&server_file(&file), client.base())?;
    // The session this one replaces would otherwise stay a live bearer token until its
    // end, in no file anyone looks at.
    if let Some((old, Some(server))) = before
        && server == client.base()
        && old != session.session
    {
        let ended = Client::with_token(&server, old)
            .and_then(|c| c.post::<_, serde_json::Value>("/v1/oidc/logout", &json!({})));
        if ended.is_ok() {
            eprintln!("Ended the session saved before.");
        }
    }
    eprintln!(
        "Signed in as {} until {} (session saved in {}).",
        session.user,
        session.expires_at,
        file.display()
    );
    Ok(())
}

/// The loopback sign-in: the session.
fn loopback(client: &Client, step_up: bool, quiet_stdout: bool) -> anyhow::Result<Session> {
    // Before anyone opens a browser: the server answers, and signs people in (a wrong
    // `--url` or a server without `[oidc]` fails now, not after the five-minute wait).
    match client.get_text("/v1/oidc/login") {
        Err(e) if e.to_string().starts_with("invalid_request:") => {}
        Err(e) => return Err(e.context("the server cannot sign you in")),
        Ok(_) => {}
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("listening on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let verifier = crate::oidc::random_token();
    let challenge = crate::oidc::s256(&verifier);
    // A path of its own per run: a request that does not know it (another program, a
    // web page probing local ports) is not taken for the sign-in.
    let secret_path = format!("/callback/{}", &crate::oidc::random_token()[..22]);
    let redirect = format!("http://127.0.0.1:{port}{secret_path}");
    let start = format!(
        "{}/v1/oidc/login?{}",
        client.base(),
        serde_urlencoded::to_string([
            ("redirect_uri", redirect.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("step_up", if step_up { "1" } else { "0" }),
        ])?
    );
    eprintln!("Open this address in a browser to sign in:");
    if quiet_stdout {
        eprintln!("{start}");
    } else {
        println!("{start}");
        std::io::stdout().flush()?;
    }
    let code = wait_for_code(&listener, &secret_path)?;
    client.post(
        "/v1/oidc/token",
        &json!({ "code": code, "code_verifier": verifier }),
    )
}

/// Ends the saved session at its server and forgets it (the file goes even when the
/// server cannot be reached: that is said, and the session then ends at its time).
pub(super) fn logout() -> anyhow::Result<ExitCode> {
    if let Some((token, Some(server))) = saved_session() {
        let ended = Client::with_token(&server, token)
            .and_then(|c| c.post::<_, serde_json::Value>("/v1/oidc/logout", &json!({})));
        match ended {
            Ok(_) => eprintln!("Ended the session at {server}."),
            Err(e) => eprintln!(
                "countersign: could not end the session at {server} ({e}); it ends by itself \
                 at its time, or an admin ends it (`countersign session revoke`)"
            ),
        }
    }
    match session_file() {
        Some(file) if file.exists() => {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
            let _ = std::fs::remove_file(server_file(&file));
            eprintln!("Signed out (removed {}).", file.display());
        }
        _ => eprintln!("No session was saved."),
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the browser's `GET {path}?code=...` on the listener; answers it with a
/// short page and returns the code. `?error=CODE&error_description=...` (the sign-in
/// failed at countersign) ends the wait with that error; anything else is answered 404
/// and the wait goes on.
fn wait_for_code(listener: &TcpListener, path: &str) -> anyhow::Result<String> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + WAIT;
    loop {
        let (stream, _) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("no sign-in came back within {} s", WAIT.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut line = String::new();
        if BufReader::new(&stream).take_line(&mut line).is_err() {
            continue;
        }
        let query: Option<Vec<(String, String)>> = line
            .strip_prefix("GET ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|target| target.strip_prefix(path))
            .and_then(|rest| rest.strip_prefix('?'))
            .and_then(|query| serde_urlencoded::from_str(query).ok());
        let get = |name: &str| {
            query
                .as_ref()
                .and_then(|q| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
        };
        let (code, error) = (get("code"), get("error"));
        let (status, body) = match (&code, &error) {
            (Some(_), _) => (
                "200 OK",
                "Signed in to countersign. You can close this window.".to_owned(),
            ),
            (None, Some(error)) => (
                "200 OK",
                format!("The sign-in to countersign failed ({error}). See the terminal."),
            ),
            _ => ("404 Not Found", "Not found.".to_owned()),
        };
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        match (code, error) {
            (Some(code), _) => return Ok(code),
            (None, Some(error)) => {
                // Anything on this computer can call the listener: shown, never obeyed,
                // and without control characters (they could rewrite the terminal).
                let why = get("error_description").unwrap_or_default();
                bail!("{}: {}", printable(&error), printable(&why));
            }
            _ => {}
        }
    }
}

/// `text` safe to print on a terminal: control characters replaced, at most 300
/// characters.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reading one request line, bounded.
trait TakeLine {
    fn take_line(self, out: &mut String) -> std::io::Result<()>;
}

impl<R: BufRead> TakeLine for R {
    fn take_line(self, out: &mut String) -> std::io::Result<()> {
        self.take(8192).read_line(out).map(drop)
    }
}

/// Writes `token` as the file's only line, readable by its owner only.
fn save(file: &std::path::Path, token: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = file
        .parent()
        .ok_or_else(|| anyhow!("{} has no folder", file.display()))?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        file.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("session")
    ));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    writeln!(f, "{token}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}
