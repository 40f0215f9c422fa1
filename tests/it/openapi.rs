//! The OpenAPI document (`GET /v1/openapi.json`) against the live server: it is the one
//! the code builds, an independent validator from PyPI (`openapi-spec-validator`) accepts
//! it, every operation it lists reaches a handler, and Schemathesis finds nothing wrong
//! (`fuzz.rs`). The unit tests of `src/api/openapi/` hold it against the router's source,
//! the error codes and the service's types.

mod fuzz;

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{POLICY, TestApp};

/// A program of the tests' Python environment (`scripts/install-python.sh` makes it).
pub fn venv(program: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py/.venv/bin")
        .join(program);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-python.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// `tests/py/check_openapi.py` on `document`: whether the validator accepts it, and what
/// it said.
fn validate(document: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_openapi.py");
    let out = Command::new(venv("python"))
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

async fn served(app: &TestApp) -> Value {
    let r = app
        .http
        .get(format!("{}/v1/openapi.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let kind = r.headers().get("content-type").unwrap().to_str().unwrap();
    assert_eq!(kind, "application/json");
    r.json().await.unwrap()
}

#[tokio::test]
async fn the_served_document_is_the_code_s_own_and_a_validator_accepts_it() {
    let app = TestApp::spawn_with(POLICY).await;
    let document = served(&app).await;
    assert_eq!(&document, countersign::api::openapi_document());
    assert_eq!(document["openapi"], "3.1.0");
    let (valid, said) = validate(&document);
    assert!(
        valid,
        "openapi-spec-validator refused the document:\n{said}"
    );
    assert!(said.contains("valid OpenAPI 3.1.0"), "{said}");
    // The validator does look: a path parameter that is not `required` is refused.
    let mut broken = document.clone();
    broken["paths"]["/v1/requests/{id}"]["get"]["parameters"][0]["required"] = false.into();
    let (valid, said) = validate(&broken);
    assert!(!valid, "an optional path parameter passed: {said}");
}

/// `path` with each `{param}` replaced by a value of the right form.
fn concrete(path: &str) -> String {
    path.replace("{id}", "r-aaaaaaaaaaaa")
        .replace("{serial}", "1")
        .replace("{name}", "nobody")
}

#[tokio::test]
async fn every_documented_operation_reaches_its_handler() {
    let app = TestApp::spawn_with(POLICY).await;
    let document = served(&app).await;
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{paths:?}");
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let r = app
                .http
                .request(method.clone(), format!("{}{}", app.url, concrete(path)))
                .header("accept", "application/json")
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            let fallback =
                status == StatusCode::NOT_FOUND && body["error"]["message"] == "no such endpoint";
            assert!(
                !fallback && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status} {body}"
            );
        }
    }
    // The same probe does tell a path that is not an endpoint.
    let r = app
        .http
        .get(format!("{}/v1/no-such-endpoint", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "no such endpoint");
}
