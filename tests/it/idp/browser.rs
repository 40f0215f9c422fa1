//! The browser's part of a sign-in at the test OpenID provider, over plain HTTP: its
//! pages, forms and redirects; and small helpers for what a client checks (PKCE, a JWT's
//! claims, a query parameter).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A client for [`sign_in`]: a cookie store, no redirects followed, a 10 s timeout.
pub fn browser() -> reqwest::Client {
    countersign::tls::install_crypto_provider();
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A PKCE pair: (code_verifier, S256 code_challenge).
pub fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A JWT's header and payload, not verified.
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let mut parts = jwt.split('.');
    let mut decode = |what| -> Value {
        let part = parts
            .next()
            .unwrap_or_else(|| panic!("JWT has no {what}: {jwt}"));
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|e| panic!("JWT {what} is not base64url ({e}): {jwt}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("JWT {what} ({e}): {jwt}"))
    };
    let header = decode("header");
    (header, decode("payload"))
}

/// One query parameter of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    Url::parse(url)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Plays the browser from `authorize_url` on: follows redirects itself, fills the
/// provider's sign-in form with `login` and `password`, confirms its consent page, and
/// returns the first redirect whose URL starts with `stop_at` (the client's redirect_uri:
/// it carries `code` and `state`, or `error`). `http` must keep cookies and not follow
/// redirects ([`browser`]); with cookies from an earlier sign-in the provider may skip
/// the form and the consent. Panics with the last page on anything else.
pub async fn sign_in(
    http: &reqwest::Client,
    authorize_url: &str,
    login: &str,
    password: &str,
    stop_at: &str,
) -> String {
    let mut url = Url::parse(authorize_url).expect("authorize URL");
    let mut form: Option<Vec<(String, String)>> = None;
    let mut trail = Vec::new();
    let mut logins = 0;
    for _ in 0..20 {
        trail.push(format!(
            "{} {url}",
            if form.is_some() { "POST" } else { "GET" }
        ));
        let request = match form.take() {
            Some(fields) => http.post(url.clone()).form(&fields),
            None => http.get(url.clone()),
        };
        let resp = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("sign_in: {url}: {e}\n{}", trail.join("\n")));
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or_else(|| panic!("sign_in: {status} without Location from {url}"));
            let next = url.join(location).expect("Location is a URL");
            if next.as_str().starts_with(stop_at) {
                return next.into();
            }
            url = next;
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        let fail = |why: &str| -> ! {
            panic!(
                "sign_in: {why}: {status} from {url}\n--- steps:\n{}\n--- page:\n{body}",
                trail.join("\n")
            )
        };
        if status != reqwest::StatusCode::OK {
            fail("unexpected answer");
        }
        let Some((action, mut fields)) = parse_form(&body) else {
            fail("a page without a form");
        };
        if fields.iter().any(|(name, _)| name == "login") {
            logins += 1;
            if logins > 1 {
                fail("the sign-in form again");
            }
            for (name, value) in &mut fields {
                match name.as_str() {
                    "login" => *value = login.to_owned(),
                    "password" => *value = password.to_owned(),
                    _ => {}
                }
            }
        }
        url = url.join(&action).expect("form action is a URL");
        form = Some(fields);
    }
    panic!("sign_in: more than 20 steps:\n{}", trail.join("\n"));
}

/// The first `<form>` of `html`: its action and its inputs' names and values.
fn parse_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let start = html.find("<form")?;
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| start + e);
    let form = &html[start..end];
    let tag_end = form.find('>')?;
    let action = attribute(&form[..tag_end], "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut rest = &form[tag_end..];
    while let Some(i) = rest.find("<input") {
        rest = &rest[i..];
        let close = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..close];
        if let Some(name) = attribute(tag, "name") {
            fields.push((name, attribute(tag, "value").unwrap_or_default()));
        }
        rest = &rest[close..];
    }
    Some((action, fields))
}

/// An attribute's value in a start tag (double-quoted, entities decoded).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let at = tag.find(&needle)? + needle.len();
    let len = tag[at..].find('"')?;
    Some(unescape(&tag[at..at + len]))
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix('#')
                .and_then(|n| n.parse().ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
