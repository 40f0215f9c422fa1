//! The HTTP the OpenID Connect client does, over the crate's `reqwest`: answers are
//! bounded in size, redirects are not followed (the client is built so), and nothing is
//! logged (requests carry the client secret and codes).

use openidconnect::{HttpRequest, HttpResponse};
use serde_json::Value;

use super::OidcError;

/// The most an answer of the provider may hold (discovery, keys, tokens, userinfo).
const MAX_ANSWER: usize = 512 * 1024;

/// Why an exchange with the provider failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum HttpError {
    #[error("{0}")]
    Reqwest(#[from] reqwest::Error),
    #[error("the answer is larger than {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("{0}")]
    Http(#[from] openidconnect::http::Error),
}

/// The HTTP client the `openidconnect` crate calls: each call owns its handle on
/// `client` (a future borrowing nothing is `Send` whatever the caller's lifetimes).
pub(super) fn client(
    client: &reqwest::Client,
) -> impl Fn(
    HttpRequest,
) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let client = client.clone();
    move |req| {
        let client = client.clone();
        Box::pin(async move { send(&client, req).await })
    }
}

/// Sends `req`; the answer whatever its status (the caller reads errors from it).
pub(super) async fn send(
    client: &reqwest::Client,
    req: HttpRequest,
) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let answer = client
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = read_bounded(answer).await?;
    let mut out = openidconnect::http::Response::builder()
        .status(status)
        .body(body)?;
    *out.headers_mut() = headers;
    Ok(out)
}

async fn read_bounded(mut answer: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = answer.chunk().await? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(HttpError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// GETs JSON with a bearer token (userinfo).
pub(super) async fn get_json(
    client: &reqwest::Client,
    url: &str,
    bearer: &str,
) -> Result<Value, OidcError> {
    let answer = client
        .get(url)
        .bearer_auth(bearer)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OidcError::Unavailable(format!("userinfo: {e}")))?;
    if !answer.status().is_success() {
        return Err(OidcError::Refused(format!(
            "userinfo answered {}",
            answer.status()
        )));
    }
    let body = read_bounded(answer)
        .await
        .map_err(|e| OidcError::Unavailable(format!("userinfo: {e}")))?;
    serde_json::from_slice(&body)
        .map_err(|e| OidcError::Refused(format!("userinfo is not JSON: {e}")))
}

/// The JSON payload of a compact JWT (whose signature the caller has verified).
pub(super) fn jwt_payload(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
