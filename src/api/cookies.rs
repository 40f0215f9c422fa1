//! The browser cookies of sign-in, and where a form came from.
//!
//! Two cookies: `countersign_signin` ties a sign-in at the provider to the browser that
//! started it (`SameSite=Lax`: it must come back with the provider's redirect), and
//! `countersign_device` ties the device login's confirm form to the page this browser
//! was shown (`SameSite=Strict`). Under an `https://` `public_url` they are
//! `__Host-countersign_signin` and `__Host-countersign_device`: `Secure`, `Path=/`, no
//! `Domain`, so a sibling subdomain cannot plant them ("cookie tossing").

use axum::http::{HeaderMap, HeaderValue, header};

use super::AppState;

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cookie {
    /// The sign-in in progress (its `state`).
    SignIn,
    /// The device confirm form's token.
    DeviceForm,
    /// The web UI's session (its `css_` token): `cs_session`, `__Host-cs_session` over
    /// HTTPS; `SameSite=Strict`, `Path=/`.
    Session,
}

impl Cookie {
    fn base(self) -> &'static str {
        match self {
            Cookie::SignIn => "countersign_signin",
            Cookie::DeviceForm => "countersign_device",
            Cookie::Session => "cs_session",
        }
    }

    fn same_site(self) -> &'static str {
        match self {
            Cookie::SignIn => "Lax",
            Cookie::DeviceForm | Cookie::Session => "Strict",
        }
    }
}

fn name(state: &AppState, cookie: Cookie) -> String {
    if secure(state) {
        format!("__Host-{}", cookie.base())
    } else {
        cookie.base().to_owned()
    }
}

/// Whether sign-in cookies are sent over HTTPS only (`public_url` is `https://`).
pub(super) fn secure(state: &AppState) -> bool {
    state
        .config()
        .oidc
        .as_ref()
        .is_some_and(|o| o.public_url.starts_with("https://"))
}

/// `Set-Cookie` for `cookie` with `value` for `max_age` seconds (0: removed).
pub(super) fn set(state: &AppState, cookie: Cookie, value: &str, max_age: u32) -> HeaderValue {
    let (path, secure) = match (secure(state), cookie) {
        (true, _) => ("/", "; Secure"),
        (false, Cookie::Session) => ("/", ""),
        (false, _) => ("/v1/oidc/", ""),
    };
    let text = format!(
        "{}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={}{secure}",
        name(state, cookie),
        cookie.same_site()
    );
    // The value is base64url (`random_token`) or empty: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of `cookie` the browser sent, if any.
pub(super) fn get(state: &AppState, headers: &HeaderMap, cookie: Cookie) -> Option<String> {
    let name = name(state, cookie);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The origin of `public_url` (`https://ca.example.com`), as browsers send it in `Origin`.
pub(super) fn our_origin(state: &AppState) -> Option<String> {
    state
        .config()
        .oidc
        .as_ref()
        .and_then(|o| reqwest::Url::parse(&o.public_url).ok())
        .map(|u| u.origin().ascii_serialization())
}

/// Whether a form post came from a page of ours, as far as the browser says: a present
/// `Sec-Fetch-Site` must be `same-origin`, a present `Origin` must be `public_url`'s.
pub(super) fn from_our_page(state: &AppState, headers: &HeaderMap) -> bool {
    let site_ok = headers
        .get("sec-fetch-site")
        .is_none_or(|v| v.as_bytes() == b"same-origin");
    let ours = our_origin(state);
    let origin_ok = headers.get(header::ORIGIN).is_none_or(|v| {
        ours.as_deref()
            .is_some_and(|o| v.to_str().is_ok_and(|v| v == o))
    });
    site_ok && origin_ok
}
