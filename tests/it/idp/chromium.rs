//! A real browser: Debian's headless Chromium driven by Playwright (`tests/oidc/browser.mjs`,
//! installed with the provider by `npm ci --prefix tests/oidc`; scripts/install-chromium.sh
//! installs the browser).

use std::process::{Command, Stdio};

use serde_json::Value;

/// Where Chromium ended a sign-in, and that page's text.
#[derive(Debug, Clone)]
pub struct Ended {
    /// The page's address, as the browser shows it.
    pub url: String,
    /// The page's text.
    pub text: String,
}

/// Opens `start` in headless Chromium and signs in as `login` with `password` through
/// every page (the provider's sign-in and consent, countersign's confirmations) until a
/// page says the sign-in is over. Run it off the test's thread (it blocks). Panics with
/// what the browser saw when it ends elsewhere.
pub fn chromium_sign_in(start: &str, login: &str, password: &str) -> Ended {
    let oidc = super::oidc_dir();
    assert!(
        oidc.join("node_modules/playwright-core").is_dir(),
        "{}/node_modules/playwright-core is missing: run `npm ci --prefix tests/oidc`",
        oidc.display()
    );
    let out = Command::new("node")
        .arg(oidc.join("browser.mjs"))
        .args([start, login, password])
        .stdin(Stdio::null())
        .output()
        .expect("node runs the browser driver");
    let said: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the browser driver said: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success(),
        "Chromium did not finish the sign-in: {said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ended {
        url: said["url"].as_str().unwrap_or_default().to_owned(),
        text: said["text"].as_str().unwrap_or_default().to_owned(),
    }
}

/// A public address for a test server that listens on a random port: bound before the
/// server's config is written (so it can name it as `public_url`, and the provider can
/// redirect there), forwarding every connection to the server once it runs.
pub struct Front {
    listener: std::net::TcpListener,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Front {
    /// A free port on 127.0.0.1, held.
    pub fn bind() -> Front {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        Front { listener, url }
    }

    /// Forwards every connection to `server` (`http://127.0.0.1:PORT`) from now on, for
    /// the life of the test's runtime.
    pub fn forward_to(self, server: &str) {
        let target = server.trim_start_matches("http://").to_owned();
        self.listener.set_nonblocking(true).expect("nonblocking");
        let listener = tokio::net::TcpListener::from_std(self.listener).expect("tokio listener");
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
    }
}
