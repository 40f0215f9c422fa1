//! The schemas of what the API answers, and the patterns of what it parses, each built
//! from the parser's own constants where it has them.

use serde_json::{Map, Value, json};

use super::errors;
use crate::error_code::ErrorCode;
use crate::names::{MAX_DURATION, TEXT_FORBIDDEN, Text};
use crate::service::Status;

/// A user, group or role name (`names::ident`).
pub(super) const NAME: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// A request id (`names::request_id`).
pub(super) const REQUEST_ID: &str = "^r-[a-z2-7]{12}$";

/// An SSH key fingerprint as `ssh-keygen -l` prints it.
pub(super) const FINGERPRINT: &str = "^SHA256:[A-Za-z0-9+/]{43}$";

/// A name: user, group or role.
pub(super) fn name() -> Value {
    json!({ "type": "string", "pattern": NAME })
}

/// A request id.
pub(super) fn request_id() -> Value {
    json!({ "type": "string", "pattern": REQUEST_ID, "examples": ["r-aaaaaaa2k7qz"] })
}

/// A certificate serial as a decimal string: what `Serial::parse` takes, 1 to 2^64 - 1
/// (leading zeros allowed).
pub(super) fn serial() -> Value {
    json!({
        "type": "string",
        "pattern": format!("^0*(?:{})$", at_most(u64::MAX)),
        "description": "decimal (64-bit serials do not fit a JSON number)",
    })
}

/// Free text a person writes (a reason, a comment): what `Text::parse` takes. 1-1024
/// characters, not only white space, none of them a control character or one of
/// [`TEXT_FORBIDDEN`] (characters that show as nothing).
pub(super) fn text() -> Value {
    let mut refused = String::from("\\x00-\\x1f\\x7f-\\x9f");
    for &(lo, hi) in TEXT_FORBIDDEN {
        refused.push_str(&class_char(lo));
        if hi != lo {
            refused.push('-');
            refused.push_str(&class_char(hi));
        }
    }
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": Text::MAX_CHARS,
        "pattern": format!("^[^{refused}]*[^\\s{refused}][^{refused}]*$"),
        "description": "1-1024 characters, not only white space; no control characters and \
            no character that shows as nothing (bidi controls, zero-width characters, \
            variation selectors, tag characters, private use...)",
        "examples": ["INC-4211: replica lag"],
    })
}

/// `c` inside a character class: `\uXXXX` in the basic plane, the character itself above
/// it (a `\u{...}` escape is read differently by different regex dialects).
fn class_char(c: char) -> String {
    if u32::from(c) <= 0xffff {
        format!("\\u{:04x}", u32::from(c))
    } else {
        c.to_string()
    }
}

/// A lifetime: a whole number of seconds, minutes, hours or days, above zero and at most
/// [`MAX_DURATION`] (the form `parse_duration` reads that the CLI writes; it reads more).
pub(super) fn duration() -> Value {
    let max = MAX_DURATION.as_secs();
    let unit = |secs: u64, suffix: &str| format!("0*(?:{}){suffix}", at_most(max / secs));
    json!({
        "type": "string",
        "pattern": format!(
            "^(?:{}|{}|{}|{})$",
            unit(1, "s"),
            unit(60, "m"),
            unit(3600, "h"),
            unit(86_400, "d"),
        ),
        "description": "e.g. `45m`, `2h`: above zero, at most 366 days, and at most the \
            role's `max_ttl` (400 `invalid_request` above it)",
        "examples": ["45m"],
    })
}

/// An alternation matching the decimal numbers 1 to `max`, without leading zeros.
pub(super) fn at_most(max: u64) -> String {
    let digits: Vec<u8> = max.to_string().bytes().map(|b| b - b'0').collect();
    let n = digits.len();
    let mut alternatives = Vec::new();
    if n > 1 {
        // Every number with fewer digits.
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2));
    }
    for (i, &d) in digits.iter().enumerate() {
        let lowest = u8::from(i == 0);
        if d > lowest {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let rest = n - i - 1;
            let tail = if rest == 0 {
                String::new()
            } else {
                format!("[0-9]{{{rest}}}")
            };
            alternatives.push(format!("{prefix}[{lowest}-{}]{tail}", d - 1));
        }
    }
    alternatives.push(max.to_string());
    alternatives.join("|")
}

/// An RFC 3339 UTC time as the API writes them.
pub(super) fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn nullable(mut schema: Value) -> Value {
    if let Some(t) = schema.get("type").and_then(Value::as_str) {
        schema["type"] = json!([t, "null"]);
    }
    schema
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

/// An object schema with these `required` fields and `properties`.
pub(super) fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": properties })
}

/// [`object`] with no other fields allowed (a request body).
pub(super) fn closed(required: &[&str], properties: Value) -> Value {
    let mut o = object(required, properties);
    o["additionalProperties"] = json!(false);
    o
}

/// `schema`, or `null`.
pub(super) fn or_null(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

/// The answer schemas (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let mut all = Map::new();
    let api: Vec<&str> = ErrorCode::API.iter().map(|c| c.as_str()).collect();
    all.insert("Error".into(), errors::error_schema(&api));
    all.insert("Request".into(), request());
    all.insert(
        "Approval".into(),
        object(
            &["approver", "at", "comment"],
            json!({
                "approver": { "type": "string" },
                "at": time(),
                "comment": nullable(json!({ "type": "string" })),
            }),
        ),
    );
    all.insert(
        "Step".into(),
        object(
            &["approvers", "approvals", "remaining", "approved_by"],
            json!({
                "approvers": strings(),
                "approvals": { "type": "integer", "minimum": 0 },
                "remaining": { "type": "integer", "minimum": 0 },
                "approved_by": strings(),
            }),
        ),
    );
    all.insert(
        "Certificate".into(),
        object(
            &["serial", "key_id", "valid_after", "valid_before", "revoked"],
            json!({
                "serial": serial(), "key_id": { "type": "string" },
                "valid_after": time(), "valid_before": time(),
                "revoked": { "oneOf": [{ "type": "null" }, super::schema("Revocation")] },
            }),
        ),
    );
    all.insert(
        "Revocation".into(),
        object(
            &["at", "by", "reason"],
            json!({
                "at": time(), "by": { "type": "string" }, "reason": { "type": "string" },
            }),
        ),
    );
    all.insert(
        "RequestList".into(),
        object(
            &["requests"],
            json!({
                "requests": { "type": "array", "items": super::schema("Request") },
                "next": request_id(),
            }),
        ),
    );
    all.insert(
        "WhoAmI".into(),
        object(
            &[
                "user",
                "groups",
                "admin",
                "can_request",
                "can_approve",
                "can_break_glass",
                "can_review",
                "disabled",
            ],
            json!({
                "user": { "type": "string" }, "groups": strings(), "admin": { "type": "boolean" },
                "can_request": strings(), "can_approve": strings(), "can_break_glass": strings(),
                "can_review": strings(), "disabled": { "type": "boolean" },
                "scopes": { "description": "only with a service account's token", "type": "array",
                    "items": { "type": "string",
                        "enum": ["request", "fetch", "read-audit", "host-token"] } },
                "session": { "description": "only with a session from the device flow, which \
                    never approves, breaks the glass, reviews or registers keys, and requests \
                    only for keys registered to the user",
                    "type": "string", "enum": ["oidc-device"] },
            }),
        ),
    );
    all.extend(super::admin::schemas());
    all.extend(super::signin::schemas());
    all
}

fn request() -> Value {
    let statuses: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
    let opt = |schema: Value| nullable(schema);
    object(
        &[
            "id",
            "role",
            "requester",
            "reason",
            "status",
            "created_at",
            "expires_at",
            "ttl_seconds",
            "principals",
            "public_key_fingerprint",
            "approvals",
            "approvals_required",
            "approvals_needed",
            "role_changed",
            "waiting_for",
            "decided_at",
            "decided_by",
            "decision_code",
            "decision_note",
            "certificate",
            "requester_disabled",
            "version",
        ],
        json!({
            "id": request_id(),
            "role": name(),
            "requester": name(),
            "reason": { "type": "string" },
            "status": { "type": "string", "enum": statuses },
            "created_at": time(),
            "expires_at": time(),
            "ttl_seconds": { "type": "integer", "minimum": 1 },
            "principals": strings(),
            "public_key_fingerprint": { "type": "string", "pattern": FINGERPRINT },
            "approvals": { "type": "array", "items": super::schema("Approval") },
            "approvals_required": { "type": "integer", "minimum": 0 },
            "approvals_needed": { "type": "integer", "minimum": 0 },
            "role_changed": { "type": "boolean" },
            "waiting_for": { "type": "array", "items": super::schema("Step") },
            "decided_at": opt(time()),
            "decided_by": opt(json!({ "type": "string" })),
            "decision_code": opt(json!({ "type": "string" })),
            "decision_note": opt(json!({ "type": "string" })),
            "certificate": { "oneOf": [{ "type": "null" }, super::schema("Certificate")] },
            "requester_disabled": { "type": "boolean" },
            "version": { "type": "string", "pattern": "^[0-9a-f]{16}$" },
            "breakglass": super::schema("BreakGlass"),
        }),
    )
}
