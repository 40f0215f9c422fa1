//! `countersign login --device` (RFC 8628): for a terminal whose computer has no browser
//! (an SSH session, a server). The CLI asks countersign for a device login, prints the
//! address to open on any device (it carries the code) and the code, and polls until the
//! person has confirmed and signed in there.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::client::Client;
use super::Session;

/// RFC 8628's answer to the device authorization request (3.2).
#[derive(Debug, Deserialize)]
struct Grant {
    device_code: String,
    user_code: String,
    verification_uri_complete: String,
    expires_in: u64,
    interval: u64,
}

/// Whether this terminal likely has no browser beside it: inside an SSH session, or (on
/// systems with X11 or Wayland) no display.
pub(in crate::cli) fn no_browser_here() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return true;
    }
    cfg!(all(unix, not(target_os = "macos"))) && !set("DISPLAY") && !set("WAYLAND_DISPLAY")
}

/// The device login: the session, once the person signed in.
pub(super) fn sign_in(
    client: &Client,
    step_up: bool,
    quiet_stdout: bool,
) -> anyhow::Result<Session> {
    let host = hostname();
    let grant: Grant = client.post(
        "/v1/oidc/device",
        &json!({ "host": host, "step_up": step_up }),
    )?;
    eprintln!(
        "To sign in, open this address in a browser on any device, check that it shows the \
         code {} and confirm:",
        grant.user_code
    );
    if quiet_stdout {
        eprintln!("{}", grant.verification_uri_complete);
    } else {
        println!("{}", grant.verification_uri_complete);
        std::io::stdout().flush()?;
    }
    eprintln!(
        "Code: {} (never confirm a code you did not get here)",
        grant.user_code
    );
    let deadline = Instant::now() + Duration::from_secs(grant.expires_in);
    let mut interval = Duration::from_secs(grant.interval.max(1));
    let poll = json!({
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "device_code": grant.device_code,
    });
    loop {
        std::thread::sleep(interval);
        let (status, body) = client.post_raw("/v1/oidc/token", &poll)?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .context("server sent a response that is not the expected JSON");
        }
        let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let error = answer["error"].as_str().unwrap_or_default();
        let why = super::printable(answer["error_description"].as_str().unwrap_or_default());
        match error {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            "expired_token" => bail!("the sign-in was not finished in time; run login again"),
            "access_denied" => bail!("the sign-in was refused: {why}"),
            "" => {
                // countersign's own error form (`{"error":{"code","message"}}`).
                let code = answer["error"]["code"].as_str().unwrap_or("error");
                let message = answer["error"]["message"].as_str().unwrap_or_default();
                return Err(anyhow!("countersign: {code}: {message} (HTTP {status})"));
            }
            other => bail!("the sign-in failed: {}: {why}", super::printable(other)),
        }
        if Instant::now() > deadline {
            bail!("the sign-in was not finished in time; run login again");
        }
    }
}

/// This computer's name, to show on the confirm page (best effort).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
