//! Delivering notifications to `[[notify]]` sinks: the bytes each kind is sent and one
//! HTTP POST. `webhook` sinks get the event's JSON signed by the Standard Webhooks scheme
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 over
//! id.timestamp.body>`), so receivers verify it with off-the-shelf libraries; `slack`
//! sinks get Slack's incoming-webhook JSON. Redirects are not followed and answers are
//! not read past their status line.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::{NotifySink, SinkKind};

/// Base64 with or without its `=` padding, as `whsec_` keys come both ways.
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// How long one delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A sink ready to deliver to: its config, URL and signing key read from their files.
pub struct Sink {
    /// Its config.
    pub config: NotifySink,
    url: Zeroizing<String>,
    key: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// Why a sink cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[[notify]] {name}: {message}")]
pub struct SinkError {
    /// The sink.
    pub name: String,
    /// What is wrong (never the secret).
    pub message: String,
}

impl Sink {
    /// Reads the sink's URL (first line of `url_file`: an `http` or `https` URL) and, for
    /// a webhook, its signing key (`whsec_` + base64 as Standard Webhooks writes it, else
    /// the line's bytes), under the rules of other secret files.
    pub fn load(config: &NotifySink) -> Result<Sink, SinkError> {
        let err = |message: String| SinkError {
            name: config.name.clone(),
            message,
        };
        let read = |path: &crate::config::CredentialPath| -> Result<Zeroizing<Vec<u8>>, SinkError> {
            let path = path.resolve().map_err(err)?;
            crate::ca::read_secret_file(&path).map_err(err)
        };
        let raw = read(&config.url_file)?;
        let url = std::str::from_utf8(&raw)
            .map_err(|_| err("url_file: the URL is not text".into()))?
            .trim()
            .to_owned();
        let parsed =
            reqwest::Url::parse(&url).map_err(|_| err("url_file: not a URL".to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(err(
                "url_file: the URL must be http:// or https:// with a host".into(),
            ));
        }
        let key = match &config.secret_file {
            None => None,
            Some(f) => {
                let raw = read(f)?;
                let text = std::str::from_utf8(&raw).unwrap_or_default().trim();
                Some(match text.strip_prefix("whsec_") {
                    Some(b64) => Zeroizing::new(
                        LENIENT
                            .decode(b64)
                            .map_err(|_| err("secret_file: whsec_ key is not base64".into()))?,
                    ),
                    None => raw,
                })
            }
        };
        if key.as_ref().is_some_and(|k| k.len() < 16) {
            return Err(err("secret_file: the key must be at least 16 bytes".into()));
        }
        Ok(Sink {
            config: config.clone(),
            url: Zeroizing::new(url),
            key,
        })
    }
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`: the Standard Webhooks
/// signature.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// Longest text from a requester put in a Slack message, after escaping (Slack refuses
/// a text object over 3000 characters: a long reason must not keep the message out).
const MAX_SLACK_TEXT: usize = 1000;

/// Text from a requester, made inert for Slack: `&`, `<` and `>` escaped (no manual
/// links, mentions or `<!channel>`), `://` written `[:]//` (no link a reader could
/// follow by mistake), and cut to [`MAX_SLACK_TEXT`] characters. The text objects it
/// goes into are `verbatim`, so Slack links no URL or channel name by itself either.
fn slack_escape(s: &str) -> String {
    let escaped = s
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace("://", "[:]//");
    if escaped.chars().count() <= MAX_SLACK_TEXT {
        return escaped;
    }
    let mut cut: String = escaped.chars().take(MAX_SLACK_TEXT).collect();
    // Not in the middle of an entity.
    if let Some(amp) = cut.rfind('&')
        && !cut[amp..].contains(';')
    {
        cut.truncate(amp);
    }
    cut.push('…');
    cut
}

/// A `verbatim` mrkdwn text object.
fn mrkdwn(text: String) -> Value {
    json!({ "type": "mrkdwn", "text": text, "verbatim": true })
}

/// The Slack incoming-webhook message for an event's JSON.
pub fn slack_body(payload: &Value) -> Value {
    let data = &payload["data"];
    let r = &data["request"];
    let text = |v: &Value| slack_escape(v.as_str().unwrap_or_default());
    let event = payload["type"].as_str().unwrap_or_default();
    let headline = match event {
        "request.created" => "waits for approval".to_owned(),
        "request.decided" => format!("is {}", text(&r["status"])),
        "certificate.revoked" => "had its certificate revoked".to_owned(),
        "breakglass.used" => ":rotating_light: was taken by BREAK-GLASS, without approval: \
            it must be reviewed"
            .to_owned(),
        "breakglass.reminded" => format!(
            "(break-glass) still waits for its review, due {}",
            text(&r["breakglass"]["review_due"])
        ),
        "breakglass.overdue" => format!(
            ":warning: (break-glass) is past its review deadline {}",
            text(&r["breakglass"]["review_due"])
        ),
        "breakglass.reviewed" => format!(
            "(break-glass) was reviewed: {} of {} verdicts{}",
            r["breakglass"]["reviews_received"].as_u64().unwrap_or(0),
            r["breakglass"]["reviews_required"].as_u64().unwrap_or(0),
            match r["breakglass"]["outcome"].as_str() {
                Some(o) => format!(", closed {}", slack_escape(o)),
                None => String::new(),
            }
        ),
        "breakglass.allowed" => format!(
            "(break-glass) still waits for its review, and {} allowed {} to break the glass \
             once more before it is",
            text(&data["allowance"]["allowed_by"]),
            text(&data["allowance"]["user"])
        ),
        "notify.dead" => format!(
            "could not be told to sink {} ({}: {})",
            text(&data["sink"]),
            text(&data["event"]),
            text(&data["error"])
        ),
        other => slack_escape(other),
    };
    let summary = if r.is_object() {
        format!(
            "Request {} by {} for {} {headline}",
            text(&r["id"]),
            text(&r["requester"]),
            text(&r["role"]),
        )
    } else {
        format!("A notification {headline}")
    };
    let mut blocks = vec![json!({ "type": "section", "text": mrkdwn(summary.clone()) })];
    // A sink told of another role's break-glass gets no details of the request.
    if r["principals"].is_array() {
        let principals: Vec<String> = r["principals"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        let given = r["approvals"].as_array().map_or(0, Vec::len);
        let mut lines = vec![
            format!("*Principals:* {}", principals.join(", ")),
            format!("*TTL:* {} s", r["ttl_seconds"].as_i64().unwrap_or(0)),
            format!(
                "*Approvals:* {given} of {}",
                r["approvals_required"].as_u64().unwrap_or(0)
            ),
        ];
        if r["status"] == "pending" {
            lines.push(format!("*Waits until:* {}", text(&r["expires_at"])));
        }
        if r["serial"].is_string() {
            lines.push(format!(
                "*Certificate:* serial {}, valid until {}",
                text(&r["serial"]),
                text(&r["valid_before"])
            ));
        }
        if r["decided_by"].is_string() {
            lines.push(format!("*Decided by:* {}", text(&r["decided_by"])));
        }
        if r["revoked"].is_object() {
            lines.push(format!(
                "*Revoked by:* {} at {}",
                text(&r["revoked"]["by"]),
                text(&r["revoked"]["at"])
            ));
        }
        blocks.push(json!({ "type": "section", "text": mrkdwn(lines.join("\n")) }));
        // What requesters and deciders wrote, each in a block of its own.
        for (label, value) in [
            ("Reason (as the requester wrote it)", &r["reason"]),
            ("Note", &r["decision_note"]),
            ("Revocation reason", &r["revoked"]["reason"]),
        ] {
            if value.as_str().is_some_and(|v| !v.is_empty()) {
                let block = mrkdwn(format!("*{label}:*\n{}", text(value)));
                blocks.push(json!({ "type": "section", "text": block }));
            }
        }
    }
    // The review page, from the operator's `public_url`: a button, never an approval.
    if let Some(link) = data["link"].as_str().filter(|l| l.starts_with("http")) {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": { "type": "plain_text", "text": "Review" },
                "url": link,
            }],
        }));
    }
    json!({ "text": summary, "blocks": blocks })
}

/// How one delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A 2xx answer.
    Yes,
    /// Refused or failed; `retry_after` seconds when a 429 said so.
    No {
        /// Why (status or error kind: never the URL).
        why: String,
        /// `Retry-After` of a 429, in seconds.
        retry_after: Option<u64>,
    },
}

/// An HTTP client for deliveries: no redirects, a timeout, no cookies.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    crate::tls::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .connect_timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// POSTs the event `payload` (its JSON text, with id `event_id`) to `sink` at `now`
/// (Unix seconds).
pub async fn deliver(
    http: &reqwest::Client,
    sink: &Sink,
    event_id: &str,
    payload: &str,
    now: i64,
) -> Delivered {
    let mut req = http
        .post(sink.url.as_str())
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    let body = match sink.config.kind {
        SinkKind::Webhook => {
            let key = sink
                .key
                .as_deref()
                .map(|k| k.as_slice())
                .unwrap_or_default();
            req = req
                .header("webhook-id", event_id)
                .header("webhook-timestamp", now.to_string())
                .header("webhook-signature", sign(key, event_id, now, payload));
            payload.to_owned()
        }
        SinkKind::Slack => {
            let value: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
            slack_body(&value).to_string()
        }
    };
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Delivered::Yes,
        Ok(resp) => {
            let status = resp.status();
            let retry_after = (status == reqwest::StatusCode::TOO_MANY_REQUESTS)
                .then(|| {
                    resp.headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .flatten();
            Delivered::No {
                why: format!("HTTP {}", status.as_u16()),
                retry_after,
            }
        }
        Err(e) => Delivered::No {
            why: if e.is_timeout() {
                "timed out".into()
            } else if e.is_connect() {
                "could not connect".into()
            } else {
                "the request failed".into()
            },
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_standard_webhooks_v1() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = BASE64.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn slack_text_cannot_mention_or_link() {
        let payload = json!({
            "type": "request.created",
            "data": { "request": {
                "id": "r-1", "requester": "alice", "role": "prod-db",
                "reason": "<!channel> see <https://evil|here> *now*",
                "principals": ["postgres"], "approvals_needed": 1, "approvals_required": 1,
            }},
        });
        let body = slack_body(&payload).to_string();
        assert!(
            !body.contains("<!channel>") && !body.contains("<https"),
            "{body}"
        );
        assert!(body.contains("&lt;!channel&gt;"), "{body}");
    }
}
