//! The schemas of request bodies: each one's fields as its handler's `deny_unknown_fields`
//! struct has them (an optional field may also be `null`, which serde reads as absent).

use serde_json::{Map, Value, json};

use super::schemas::{FINGERPRINT, duration, serial, text, time};

/// A real Ed25519 public key (made with `ssh-keygen`; its private half was thrown away).
const EXAMPLE_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZWwcUUuvY4n3lUpnbAgFUrKA4zeesPNTwQTxeDmozw alice@laptop";

/// An SSH public key line as `SubjectKey::parse` takes it (its checks beyond the form,
/// such as the key lying on its curve, are the server's).
pub(super) fn public_key() -> Value {
    json!({
        "type": "string",
        "pattern": "^[ \\t]*(?:ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) \
            [A-Za-z0-9+/]+={0,2}(?: [^\\x00-\\x1f\\x7f-\\x9f]*)?$",
        "description": "one OpenSSH public key line: `ssh-ed25519`, \
            `ecdsa-sha2-nistp256/384/521` or `ssh-rsa` (at least 3072 bits), not a \
            certificate, no options, not the CA's own key; a comment is kept",
        "examples": [EXAMPLE_KEY],
    })
}

/// A role's name (one of the config's).
fn role() -> Value {
    let mut role = super::schemas::name();
    role["examples"] = json!(["prod-db"]);
    role["description"] = json!("one of the config's roles the caller may request");
    role
}

/// `schema`, or `null` (read as absent).
fn or_null(schema: Value) -> Value {
    json!({ "oneOf": [schema, { "type": "null" }] })
}

/// A closed object.
fn body(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "properties": properties,
        "additionalProperties": false,
    })
}

/// Printable ASCII of at most 200 bytes: the codes of the sign-in (the server refuses a
/// longer one, counting bytes).
fn code() -> Value {
    json!({ "type": "string", "pattern": "^[!-~]{0,200}$" })
}

/// The request body schemas (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let version = json!({
        "type": "string",
        "description": "the request's `version` as reviewed: 409 `request_changed` if it \
            changed since",
    });
    let bodies = [
        (
            "CreateRequest",
            body(
                &["role", "public_key", "reason"],
                json!({
                    "role": role(),
                    "public_key": public_key(),
                    "reason": text(),
                    "ttl": or_null(duration()),
                }),
            ),
        ),
        (
            "ApproveRequest",
            body(
                &[],
                json!({
                    "comment": or_null(text()), "version": or_null(version.clone()),
                }),
            ),
        ),
        (
            "DenyRequest",
            body(
                &["reason"],
                json!({
                    "reason": text(), "version": or_null(version),
                }),
            ),
        ),
        ("CancelRequest", body(&[], json!({}))),
        (
            "DoneRequest",
            body(&[], json!({ "reason": or_null(text()) })),
        ),
        ("Revoke", body(&["reason"], json!({ "reason": text() }))),
        (
            "KrlForgotten",
            body(
                &["serial", "valid_before", "reason"],
                json!({
                    "serial": serial(), "valid_before": time(), "reason": text(),
                    "host": { "type": "boolean", "default": false },
                }),
            ),
        ),
        (
            "EnableUser",
            body(&[], json!({ "reason": or_null(text()) })),
        ),
        (
            "KeyChallengeBody",
            body(&["public_key"], json!({ "public_key": public_key() })),
        ),
        (
            "RegisterKey",
            body(
                &["public_key", "challenge", "signature"],
                json!({
                    "public_key": public_key(),
                    "challenge": { "type": "string", "minLength": 1, "maxLength": 8192,
                        "description": "exactly as `POST /v1/keys/challenge` answered it" },
                    "signature": { "type": "string", "minLength": 1, "maxLength": 8192,
                        "description": "armored SSHSIG (`ssh-keygen -Y sign -n countersign-key`)" },
                }),
            ),
        ),
        (
            "RemoveKey",
            body(
                &["fingerprint"],
                json!({
                    "fingerprint": { "type": "string", "pattern": FINGERPRINT },
                }),
            ),
        ),
        (
            "TokenBody",
            body(
                &[],
                json!({
                    "grant_type": or_null(json!({ "type": "string", "enum": [
                        "authorization_code", crate::service::DEVICE_CODE_GRANT,
                    ] })),
                    "code": or_null(code()),
                    "code_verifier": or_null(code()),
                    "device_code": or_null(code()),
                }),
            ),
        ),
        (
            "DeviceBody",
            body(
                &[],
                json!({
                    "host": { "type": "string", "description": "shown on the confirm page in \
                        letters, digits, `.`, `-`, `_` only, at most 64" },
                    "step_up": { "type": "boolean" },
                }),
            ),
        ),
        (
            "DeviceConfirmForm",
            json!({
                "type": "object",
                "required": ["user_code", "csrf", "action"],
                "properties": {
                    "user_code": { "type": "string", "maxLength": 40 },
                    "csrf": { "type": "string" },
                    "action": { "type": "string", "enum": ["confirm", "refuse"] },
                },
            }),
        ),
    ];
    bodies
        .into_iter()
        .map(|(name, schema)| (name.to_owned(), schema))
        .collect()
}
