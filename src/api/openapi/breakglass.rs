//! Paths and schemas of break-glass: a use, a reviewer's verdict, and an admin's
//! allowance of one more use.

use serde_json::{Map, Value, json};

use super::schemas::{closed, name, object, or_null, text, time};
use super::{Auth, answers, json_answer, op, param, with_body, with_params};

fn verdict() -> Value {
    json!({ "type": "string", "enum": ["justified", "unjustified"] })
}

/// The answer and body schemas of this file (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let all = [
        (
            "BreakGlass",
            object(
                &[
                    "ttl_asked_seconds",
                    "ttl_cut",
                    "reviewers",
                    "reviews_required",
                    "review_due",
                    "overdue",
                    "verdicts",
                    "outcome",
                    "closed_at",
                    "allowed_by",
                ],
                json!({
                    "ttl_asked_seconds": or_null(json!({ "type": "integer", "minimum": 1 })),
                    "ttl_cut": { "type": "boolean",
                        "description": "the lifetime asked was cut to the table's max_ttl" },
                    "reviewers": strings,
                    "reviews_required": { "type": "integer", "minimum": 1 },
                    "review_due": time(),
                    "overdue": { "type": "boolean" },
                    "verdicts": { "type": "array", "items": super::schema("Verdict") },
                    "outcome": or_null(verdict()),
                    "closed_at": or_null(time()),
                    "allowed_by": or_null(json!({ "type": "string" })),
                }),
            ),
        ),
        (
            "Verdict",
            object(
                &["reviewer", "verdict", "comment", "at"],
                json!({
                    "reviewer": { "type": "string" }, "verdict": verdict(),
                    "comment": { "type": "string" }, "at": time(),
                }),
            ),
        ),
        (
            "Allowance",
            object(
                &["user", "allowed_by", "unreviewed", "unjustified"],
                json!({
                    "user": { "type": "string" }, "allowed_by": { "type": "string" },
                    "unreviewed": or_null(json!({ "type": "string" })),
                    "unjustified": or_null(json!({ "type": "string" })),
                }),
            ),
        ),
        (
            "ReviewBody",
            closed(
                &["verdict", "comment"],
                json!({ "verdict": verdict(), "comment": text() }),
            ),
        ),
        ("AllowBody", closed(&["user"], json!({ "user": name() }))),
    ];
    all.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    let used = op(
        "breakglass_use",
        "Break the glass",
        "Takes a role at once, without approval, for one of its `[roles.NAME.break_glass] \
         invokers` (never a service account): the certificate is issued in the answer, with \
         key ID `countersign:breakglass:REQUEST:USER`. A `ttl` above the table's `max_ttl` is \
         cut to it (`breakglass.ttl_cut`), never refused. Every `[[notify]]` sink is told \
         (`breakglass.used`). The request shows `pending_review` until `reviews` reviewers \
         have given their verdicts. 403 `not_breakable`, `not_an_invoker`, \
         `reason_mismatch`, `sod_conflict`, `key_not_allowed`; 409 `unreviewed_breakglass` \
         while the caller's previous use waits for its review, `unjustified_breakglass` when \
         their last use was judged unjustified (unless an admin allowed one more). With a \
         session, 401 `reauth_required` unless its sign-in is within \
         `approval_max_auth_age`.",
        Auth::Bearer,
    );
    let review = with_params(
        op(
            "request_review",
            "Review a break-glass use",
            "A reviewer the use's table names (never the invoker, never a service account) \
             records `justified` or `unjustified` with a comment, once. `unjustified` \
             revokes the certificate at once if it is still valid. The review closes at \
             `reviews` verdicts; its outcome is `justified` only if all are. 403 \
             `self_review`, `not_a_reviewer`; 409 `already_reviewed`, `review_closed`, \
             `not_breakglass`. With a session, 401 `reauth_required` unless its sign-in is \
             within `approval_max_auth_age`.",
            Auth::Bearer,
        ),
        vec![param(
            "path",
            "id",
            json!({ "type": "string", "pattern": "^r-[a-z2-7]{12}$" }),
            "the request id (`r-` and 12 base32 characters)",
        )],
    );
    let allow = op(
        "breakglass_allow",
        "Allow one more break-glass use (admins)",
        "Lets `user` break the glass once more while their last use waits for its review \
         (the next use spends it); 409 `nothing_to_allow` when none of theirs waits. Never \
         for oneself. Audited as `breakglass.allowed`.",
        Auth::Bearer,
    );
    vec![
        (
            "/v1/breakglass",
            json!({ "post": answers(with_body(used, "CreateRequest", true),
                json!({ "201": json_answer("the request, issued", "Request") }),
                &[400, 401, 403, 409, 413, 415]) }),
        ),
        (
            "/v1/requests/{id}/review",
            json!({ "post": answers(with_body(review, "ReviewBody", true),
                json!({ "200": json_answer("the request as it is now", "Request") }),
                &[400, 401, 403, 404, 409, 413, 415]) }),
        ),
        (
            "/v1/breakglass/allow",
            json!({ "post": answers(with_body(allow, "AllowBody", true),
                json!({ "200": json_answer("the allowance", "Allowance") }),
                &[400, 403, 404, 409, 413, 415]) }),
        ),
    ]
}
