//! The HTTP client used by client commands: bearer token from `COUNTERSIGN_TOKEN`,
//! API errors turned into one-line messages that carry the error code. `https` URLs are
//! checked against the system's CA certificates, or, when `COUNTERSIGN_CA_CERT` names a
//! PEM file, against the certificates in it only (a private CA).

mod answer;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use answer::{answered_without_tls, passes, printable, read_capped};

/// A connection to one countersign server.
pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// Reads the token from the environment; fails with a hint when it is missing.
    pub(super) fn from_env(url: &str) -> anyhow::Result<Client> {
        // COUNTERSIGN_TOKEN wins; else the session `countersign login` saved, sent only
        // to the server it came from.
        let saved = || -> anyhow::Result<Option<String>> {
            let Some((token, server)) = super::login::saved_session() else {
                return Ok(None);
            };
            let here = base_url(url)?;
            match server {
                Some(server) if server == here => Ok(Some(token)),
                Some(server) => bail!(
                    "the session saved by `countersign login` is for {server}, not {here}: \
                     set COUNTERSIGN_URL={server}, or run `countersign login --url {here}`"
                ),
                None => bail!("the saved session names no server: run `countersign login` again"),
            }
        };
        let env = std::env::var("COUNTERSIGN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let token = match env {
            Some(token) => Some(token),
            None => saved()?,
        }
        .ok_or_else(|| {
            anyhow!(
                "COUNTERSIGN_TOKEN is not set and there is no session: sign in with \
                     `countersign login` (or an operator creates a token with `countersign \
                     token create USER`)"
            )
        })?;
        Self::new(url, Some(token.trim().to_owned()))
    }

    /// A client with `token` (the saved session, for `logout`).
    pub(super) fn with_token(url: &str, token: String) -> anyhow::Result<Client> {
        Self::new(url, Some(token))
    }

    /// A client without a token, for the unauthenticated endpoints (`/v1/krl`).
    pub(super) fn anonymous(url: &str) -> anyhow::Result<Client> {
        Self::new(url, None)
    }

    fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        crate::tls::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut builder = reqwest::Client::builder();
        if let Some(path) = std::env::var_os("COUNTERSIGN_CA_CERT").filter(|p| !p.is_empty()) {
            let path = std::path::PathBuf::from(path);
            let certs = crate::tls::read_certificates(&path)
                .context("COUNTERSIGN_CA_CERT")?
                .into_iter()
                .map(|der| reqwest::Certificate::from_der(&der))
                .collect::<Result<Vec<_>, _>>()
                .context("COUNTERSIGN_CA_CERT")?;
            builder = builder.tls_certs_only(certs);
        }
        // A server (or a machine in the middle) that accepts and never answers must not
        // hold a command for ever: a timer's `krl sync --once` would never end, and never
        // fail either.
        // Nor may it send the request elsewhere: a redirect would carry the body (a
        // reason, a key, an idempotency key) to another origin.
        builder = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(ANSWER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        Ok(Client {
            http: builder.build()?,
            base: base_url(url)?,
            token,
            rt,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// GET returning raw bytes.
    pub(super) fn get_bytes(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        self.send_bytes(self.http.get(self.url(path)))
    }

    /// A conditional GET: `None` when the server answers 304 Not Modified to
    /// `If-None-Match: etag`, else the body and its `ETag` (if it sent one).
    pub(super) fn get_if_changed(
        &self,
        path: &str,
        etag: Option<&str>,
    ) -> anyhow::Result<Option<(Vec<u8>, Option<String>)>> {
        let mut req = self.http.get(self.url(path));
        if let Some(etag) = etag {
            req = req.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let resp = self.rt.block_on(async {
            req.send().await.map_err(|e| {
                if passes(&e, true) {
                    anyhow::Error::new(Transient(format!("{:#}", self.unreachable(e))))
                } else {
                    self.unreachable(e)
                }
            })
        })?;
        if resp.status() == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        let etag = resp
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let status = resp.status();
        let body = self.rt.block_on(read_capped(resp))?;
        if !status.is_success() {
            return Err(self.refusal(status, &body));
        }
        Ok(Some((body, etag)))
    }

    /// GET returning JSON.
    pub(super) fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let text = self.send(self.http.get(self.url(path)))?;
        serde_json::from_str(&text).context("server sent a response that is not the expected JSON")
    }

    /// GET returning text.
    pub(super) fn get_text(&self, path: &str) -> anyhow::Result<String> {
        self.send(self.http.get(self.url(path)))
    }

    /// POST a JSON body, returning JSON.
    pub(super) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let text = self.send(self.http.post(self.url(path)).json(body))?;
        serde_json::from_str(&text).context("server sent a response that is not the expected JSON")
    }

    /// POST a JSON body, returning the status and body whatever they are (for answers
    /// whose errors are not countersign's, such as RFC 8628's polls).
    pub(super) fn post_raw<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<(reqwest::StatusCode, Vec<u8>)> {
        let req = self.http.post(self.url(path)).json(body);
        self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| self.unreachable(e))?;
            let status = resp.status();
            let body = read_capped(resp).await?;
            Ok((status, body))
        })
    }

    /// POST a JSON body that creates something, safe to retry: it carries a fresh
    /// `Idempotency-Key`, and when no answer comes back (the connection broke, or a load
    /// balancer says its backend is gone: 502, 503, 504) it is sent again with the same
    /// key, up to [`CREATE_ATTEMPTS`] times; the server answers a retry with what the
    /// first attempt made.
    pub(super) fn post_once<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let key = idempotency_key();
        let mut attempt = 1;
        loop {
            let req = self
                .http
                .post(self.url(path))
                .header("Idempotency-Key", &key)
                .timeout(CREATE_WAIT)
                .json(body);
            match self.send_once(req) {
                Ok(text) => {
                    return serde_json::from_str(&text)
                        .context("server sent a response that is not the expected JSON");
                }
                Err(Retry::Again(why, _)) if attempt < CREATE_ATTEMPTS => {
                    eprintln!(
                        "countersign: {why}; sending it again with the same Idempotency-Key \
                         (attempt {} of {CREATE_ATTEMPTS})",
                        attempt + 1
                    );
                    std::thread::sleep(std::time::Duration::from_secs(attempt));
                    attempt += 1;
                }
                Err(Retry::Again(why, true)) => {
                    bail!("{why}, {CREATE_ATTEMPTS} times: nothing made")
                }
                Err(Retry::Again(why, false)) => bail!(
                    "{why}, {CREATE_ATTEMPTS} times; the server may have made it all the same: \
                     see `countersign list --status pending` before asking again"
                ),
                Err(Retry::Final(e)) => return Err(e),
            }
        }
    }

    /// One attempt of [`Client::post_once`]: an answer, or whether to try again.
    fn send_once(&self, req: reqwest::RequestBuilder) -> Result<String, Retry> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let answer = self.rt.block_on(async {
            let resp = req.send().await?;
            let status = resp.status();
            Ok::<_, reqwest::Error>((status, read_capped(resp).await))
        });
        let answer = match answer {
            Ok((status, Ok(body))) => Ok((status, body)),
            Ok((_, Err(too_large))) => return Err(Retry::Final(too_large)),
            Err(e) => Err(e),
        };
        match answer {
            // Never connected (refused, no route, TLS spoken to plain HTTP, a bad
            // certificate): nothing reached a server, and trying again changes nothing.
            Err(e) if e.is_connect() => Err(Retry::Final(self.unreachable(e))),
            Err(e) => Err(Retry::Again(
                format!(
                    "no answer from countersign at {} ({})",
                    self.base,
                    crate::service::chain(&e)
                ),
                false,
            )),
            Ok((status, body)) if GONE.contains(&status.as_u16()) => {
                // countersign's own 503 says why (its database); a balancer's says nothing.
                // Its `not_ready` wrote nothing (a write refused before it began).
                let error = serde_json::from_slice::<Value>(&body).unwrap_or_default();
                let (code, message) = (
                    error["error"]["code"].as_str(),
                    error["error"]["message"].as_str(),
                );
                let made_nothing = code == Some(crate::error_code::ErrorCode::NotReady.as_str());
                let why = match (code, message) {
                    (Some(c), Some(m)) => format!("{}: {}", printable(c), printable(m)),
                    _ => "no backend".to_owned(),
                };
                let why = format!(
                    "the server at {} answered HTTP {} ({why})",
                    self.base,
                    status.as_u16()
                );
                Err(Retry::Again(why, made_nothing))
            }
            Ok((status, body)) if status.is_success() => String::from_utf8(body.to_vec())
                .map_err(|_| Retry::Final(anyhow!("server sent a response that is not UTF-8"))),
            Ok((status, body)) => Err(Retry::Final(self.refusal(status, &body))),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<String> {
        let bytes = self.send_bytes(req)?;
        String::from_utf8(bytes).context("server sent a response that is not UTF-8")
    }

    fn send_bytes(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Vec<u8>> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let req = req.build().context("building the request")?;
        let read_only = matches!(*req.method(), reqwest::Method::GET | reqwest::Method::HEAD);
        let transient = |e: anyhow::Error| anyhow::Error::new(Transient(format!("{e:#}")));
        self.rt.block_on(async {
            let resp = match self.http.execute(req).await {
                Ok(resp) => resp,
                Err(e) if passes(&e, read_only) => return Err(transient(self.unreachable(e))),
                Err(e) => return Err(self.unreachable(e)),
            };
            let status = resp.status();
            let body = match read_capped(resp).await {
                // A read cut off (the server stopped mid-answer) may be asked again.
                Err(e) if read_only && e.chain().any(|c| c.is::<reqwest::Error>()) => {
                    return Err(transient(e));
                }
                other => other?,
            };
            if status.is_success() {
                return Ok(body.to_vec());
            }
            let refusal = self.refusal(status, &body);
            if GONE.contains(&status.as_u16()) {
                return Err(anyhow::Error::new(Transient(format!("{refusal:#}"))));
            }
            Err(refusal)
        })
    }

    /// The error for an answer that is not a success: its code and message, with what to
    /// do for the common ones.
    fn refusal(&self, status: reqwest::StatusCode, body: &[u8]) -> anyhow::Error {
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let code = printable(
            parsed
                .as_ref()
                .and_then(|v| v["error"]["code"].as_str())
                .unwrap_or("error"),
        );
        let message = printable(
            parsed
                .as_ref()
                .and_then(|v| v["error"]["message"].as_str())
                .unwrap_or("unexpected response"),
        );
        if code == "user_disabled" {
            return anyhow!(
                "{code}: {message} (HTTP 401): an admin must enable the user again \
                 (countersign user enable NAME); their old tokens stay revoked, so an \
                 operator then creates a new one"
            );
        }
        if code == "token_expired" {
            return anyhow!(
                "{code}: {message} (HTTP 401; every token ends, after [tokens] default_ttl or \
                 its --ttl)"
            );
        }
        if code == "reauth_required" {
            return anyhow!("{code}: {message} (HTTP 401)");
        }
        let session = self
            .token
            .as_deref()
            .is_some_and(|t| t.starts_with(crate::service::SESSION_PREFIX));
        if status == reqwest::StatusCode::UNAUTHORIZED && session {
            return anyhow!(
                "{code}: {message} (HTTP 401): the session from `countersign login` is over \
                 or was ended: sign in again with `countersign login`"
            );
        }
        if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_some() {
            return anyhow!(
                "{code}: {message} (HTTP 401): the server did not accept the token in \
                 COUNTERSIGN_TOKEN: set it to the whole cs_... line that `countersign token \
                 create USER` printed for you; if it was revoked or your user left the \
                 config, ask an operator for a new one"
            );
        }
        anyhow!("{code}: {message} (HTTP {})", status.as_u16())
    }

    /// The error for a request that got no HTTP answer, saying what to do when the cause
    /// is a known mistake: an `https://` URL for a server that speaks plain HTTP.
    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        if answered_without_tls(&e) {
            let plain = base.replacen("https://", "http://", 1);
            return anyhow::Error::new(e).context(format!(
                "{base} does not answer TLS: the server speaks plain HTTP; use {plain} (plain \
                 HTTP only on loopback), or give the server tls_cert and tls_key"
            ));
        }
        anyhow::Error::new(e).context(format!("cannot reach countersign at {base}"))
    }
}

/// How long a connection to the server may take to open.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long any one request may take, answer included (a create's attempts wait less:
/// [`CREATE_WAIT`]).
const ANSWER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How many times a create is sent at most (the first and the retries).
const CREATE_ATTEMPTS: u64 = 3;

/// How long one attempt of a create waits for its answer before it is sent again (the
/// server gives up on a request after `request_timeout`, 30 s by default).
const CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The answers of a load balancer whose backend is gone: nothing was decided, or it is
/// unknown whether it was; a retry with the same key settles it.
const GONE: [u16; 3] = [502, 503, 504];

/// A failure that may pass: the server (or the balancer before it) could not be reached
/// or answered 502/503/504. What was asked may be asked again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct Transient(String);

/// Whether an attempt of [`Client::post_once`] may be made again.
enum Retry {
    /// No answer, none from countersign, or its `not_ready` (another replica may be ready):
    /// the same request again, with the same key; and whether the answer said none was made.
    Again(String, bool),
    /// An answer: the error it carries.
    Final(anyhow::Error),
}

/// A fresh idempotency key: 128 random bits in hex.
fn idempotency_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// `url` (from `--url` or `COUNTERSIGN_URL`) without a trailing slash, if it is an
/// `http://` or `https://` URL with a host. `ca.example.com:7070` is not: without a
/// scheme a URL parser reads `ca.example.com` as one, so this says what to write instead.
fn base_url(url: &str) -> anyhow::Result<String> {
    let base = url.trim().trim_end_matches('/');
    match reqwest::Url::parse(base) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(base.to_owned())
        }
        _ => {
            let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
            bail!(
                "--url/COUNTERSIGN_URL {url:?} is not an http:// or https:// URL: write the \
                 scheme, e.g. https://{rest} (http://{rest} for a plain-HTTP server on loopback)"
            )
        }
    }
}
