//! Paths: the sign-in endpoints (`/v1/oidc/*`) of `countersign login`, loopback and device
//! flows. Several answer a browser with a page (`text/html`) rather than JSON; all are
//! behind a cap of 60 requests a minute per client address (429 past it), and answer 401
//! `signin_failed` when the server has no `[oidc]`.

use serde_json::{Map, Value, json};

use super::errors::{codes_of, error_schema};
use super::{Auth, answers, json_answer, op, param, text_answer, with_body, with_params};

/// A device login's user code (`service::device`'s 20 consonants).
const USER_CODE: &str = "^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$";

/// The answer schemas of this file's paths (`components/schemas`).
pub(super) fn schemas() -> Map<String, Value> {
    let string = json!({ "type": "string" });
    let all = [
        (
            "SignedIn",
            json!({
                "type": "object",
                "required": ["session", "id", "user", "expires_at"],
                "properties": {
                    "session": { "type": "string", "description": "the bearer token (`css_...`)" },
                    "id": string, "user": string,
                    "expires_at": { "type": "string", "format": "date-time" },
                },
            }),
        ),
        (
            "SessionEnded",
            json!({
                "type": "object", "required": ["ended"], "properties": { "ended": string },
            }),
        ),
        (
            "DeviceGrant",
            json!({
                "type": "object",
                "required": ["device_code", "user_code", "verification_uri",
                    "verification_uri_complete", "expires_in", "interval"],
                "properties": {
                    "device_code": string,
                    "user_code": { "type": "string", "pattern": USER_CODE },
                    "verification_uri": string, "verification_uri_complete": string,
                    "expires_in": { "type": "integer", "minimum": 1 },
                    "interval": { "type": "integer", "minimum": 1 },
                },
            }),
        ),
        (
            "DeviceWait",
            json!({
                "type": "object",
                "description": "RFC 8628's answer to a poll that brings no session (not \
                    countersign's error form)",
                "required": ["error", "error_description"],
                "properties": {
                    "error": { "type": "string", "enum": ["authorization_pending", "slow_down",
                        "access_denied", "expired_token", "invalid_grant"] },
                    "error_description": string,
                },
            }),
        ),
    ];
    all.into_iter().map(|(n, s)| (n.to_owned(), s)).collect()
}

/// A response that is a page to a browser (`Accept: text/html`) or the error as JSON.
fn page_or_error(http: u16, description: &str) -> Value {
    json!({
        "description": description,
        "content": {
            "text/html": { "schema": { "type": "string" } },
            "application/json": { "schema": error_schema(&codes_of(http)) },
        },
    })
}

fn see_other(description: &str, cookie: bool) -> Value {
    let mut headers = json!({
        "Location": { "required": true, "schema": { "type": "string" } },
    });
    if cookie {
        headers["Set-Cookie"] = json!({ "schema": { "type": "string" },
            "description": "the sign-in cookie (`countersign_signin`)" });
    }
    json!({ "description": description, "headers": headers })
}

fn page(description: &str) -> Value {
    text_answer(description, "text/html")
}

/// The CLI's listener as `check_cli_redirect` takes it: plain HTTP on a loopback address
/// (`127.x.x.x`, `[::1]`, `localhost`), a port other than 80 (the scheme's own, which a URL
/// drops), no user, query or fragment; at most 200 characters.
fn cli_redirect() -> Value {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    let port = "(?:[1-9]|[1-7][0-9]|8[1-9]|9[0-9]|[1-9][0-9]{2,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}\
                |65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
    json!({
        "type": "string",
        "maxLength": 200,
        "pattern": format!(
            "^http://(?:127\\.{octet}\\.{octet}\\.{octet}|\\[::1\\]|localhost):{port}\
             (?:/[A-Za-z0-9._~-]*)*$"
        ),
        "examples": ["http://127.0.0.1:38123/callback"],
    })
}

fn login() -> Value {
    let login = with_params(
        op(
            "login_get",
            "Start a sign-in (the loopback flow)",
            "For `countersign login`: answers 303 to the provider's authorization endpoint \
             and sets the sign-in cookie. `redirect_uri` must be the CLI's listener \
             (`http://127.0.0.1:PORT/PATH`, `[::1]` or `localhost`, no query); \
             `code_challenge` the PKCE S256 challenge of its verifier.",
            Auth::None,
        ),
        vec![
            json!({ "name": "redirect_uri", "in": "query", "required": true,
                "schema": cli_redirect(), "description": "the CLI's listener" }),
            json!({ "name": "code_challenge", "in": "query", "required": true,
                "schema": { "type": "string", "pattern": "^[A-Za-z0-9_-]{43}$" },
                "description": "PKCE S256 challenge" }),
            param(
                "query",
                "code_challenge_method",
                json!({ "type": "string", "const": "S256" }),
                "only `S256`",
            ),
            param(
                "query",
                "step_up",
                json!({ "type": "string" }),
                "`1` or `true`: the provider authenticates the person again",
            ),
        ],
    );
    answers(
        login,
        json!({ "303": see_other("on to the identity provider", true) }),
        &[400, 401, 429],
    )
}

fn callback() -> Value {
    let callback = with_params(
        op(
            "callback_get",
            "Where the identity provider sends the browser back",
            "The sign-in of `state` is spent here, whatever follows. A browser without the \
             sign-in's cookie gets 401 `signin_failed`. On success, a page that links on to \
             the CLI's listener with a one-time code (loopback flow), or the page of the \
             device login or of the web UI. A failure after the checks of `state` goes to \
             the CLI's listener as 303 `?error=CODE&error_description=...`.",
            Auth::None,
        ),
        vec![
            // Printable ASCII, as countersign makes it: the server counts bytes, and a
            // longer text of other characters is refused 400 (found by Schemathesis).
            json!({ "name": "state", "in": "query", "required": true,
                "schema": { "type": "string", "pattern": "^[!-~]{1,200}$" },
                "description": "the sign-in's `state`" }),
            param(
                "query",
                "code",
                json!({ "type": "string", "minLength": 1, "maxLength": 2048 }),
                "the provider's code (required unless `error` is there)",
            ),
            param(
                "query",
                "error",
                json!({ "type": "string" }),
                "the provider's error",
            ),
        ],
    );
    let mut callback = answers(
        callback,
        json!({
            "200": page("a page: on to the CLI, or the outcome of a device login"),
            "303": see_other("on to the CLI's listener (or the web UI's page)", false),
            "400": page_or_error(400, "`state` is missing, or the code is"),
            "401": page_or_error(401, "the sign-in failed (or is not configured)"),
            "403": page_or_error(403, "the person is bound to another user name"),
            "503": page_or_error(503, "the identity provider cannot be reached"),
        }),
        &[429],
    );
    callback["security"] = json!([{ "signInCookie": [] }]);
    callback
}

fn token() -> Value {
    let token = op(
        "token_post",
        "Trade a one-time code, or a device code, for a session",
        "`{\"code\",\"code_verifier\"}` (loopback flow; the code is spent whatever the \
         outcome), or `{\"grant_type\":\"urn:ietf:params:oauth:grant-type:device_code\",\
         \"device_code\"}` (the device flow's poll: RFC 8628's 400 until the person \
         confirmed). Answers carry `Cache-Control: no-store`.",
        Auth::None,
    );
    let bad = json!({
        "description": "the body does not hold (countersign's error), or a device login \
            that brings no session yet (RFC 8628's `{\"error\",\"error_description\"}`)",
        "content": { "application/json": { "schema": { "oneOf": [
            error_schema(&codes_of(400)), super::schema("DeviceWait"),
        ] } } },
    });
    answers(
        with_body(token, "TokenBody", true),
        json!({ "200": json_answer("the session", "SignedIn"), "400": bad }),
        &[401, 403, 413, 415, 429],
    )
}

fn logout() -> Value {
    answers(
        op(
            "logout_post",
            "End the caller's own session",
            "Ends the session presented as the bearer token; 400 `invalid_request` for an \
             API token (an operator revokes those).",
            Auth::Bearer,
        ),
        json!({ "200": json_answer("the session ended", "SessionEnded") }),
        &[400],
    )
}

fn device() -> Value {
    let start = op(
        "device_post",
        "Start a device login",
        "`countersign login --device` (RFC 8628 3.1): the codes to show the person.",
        Auth::None,
    );
    let page_get = with_params(
        op(
            "device_get",
            "The device login page, for a person",
            "Without `user_code` (or with one that matches no waiting login: 404) a box to \
             type the code; with one, what asked, when and from where, and buttons to \
             confirm or refuse. Sets the form cookie.",
            Auth::None,
        ),
        vec![param(
            "query",
            "user_code",
            json!({ "type": "string" }),
            "the code the terminal shows",
        )],
    );
    json!({
        "post": answers(with_body(start, "DeviceBody", true),
            json!({ "200": json_answer("the device login's codes", "DeviceGrant") }),
            &[400, 401, 413, 415, 429]),
        "get": answers(page_get, json!({
            "200": page("the page"),
            "404": page("no login waits under that code"),
        }), &[401, 429]),
    })
}

fn confirm() -> Value {
    let mut confirm = op(
        "confirm_post",
        "Confirm or refuse a device login (the page's form)",
        "Refused with a 403 page unless `csrf` equals the form cookie and the browser says \
         the form came from countersign's own page (`Sec-Fetch-Site`, `Origin`). `refuse`: \
         the CLI's next poll hears `access_denied`; `confirm`: 303 on to the provider.",
        Auth::None,
    );
    confirm["requestBody"] = json!({
        "required": true,
        "content": { "application/x-www-form-urlencoded": {
            "schema": super::schema("DeviceConfirmForm"),
        } },
    });
    let mut confirm = answers(
        confirm,
        json!({
            "200": page("the login was refused"),
            "303": see_other("on to the identity provider", true),
            "403": page("not from countersign's page in this browser"),
            "404": page("no login waits under that code"),
        }),
        &[400, 401, 413, 415, 429],
    );
    confirm["security"] = json!([{ "deviceFormCookie": [] }]);
    confirm
}

/// The paths of this file.
pub(super) fn paths() -> Vec<(&'static str, Value)> {
    vec![
        ("/v1/oidc/login", json!({ "get": login() })),
        ("/v1/oidc/callback", json!({ "get": callback() })),
        ("/v1/oidc/token", json!({ "post": token() })),
        ("/v1/oidc/logout", json!({ "post": logout() })),
        ("/v1/oidc/device", device()),
        ("/v1/oidc/device/confirm", json!({ "post": confirm() })),
    ]
}
