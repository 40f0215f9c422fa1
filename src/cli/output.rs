//! Printing to stdout: tables, request details and JSON. The text itself comes from
//! [`crate::render`], which the SSH front door shares.

use crate::render::{render_request_details, render_table};
use crate::service::RequestView;

/// Prints rows as left-aligned columns under a header.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    out!("{}", render_table(header, rows))
}

/// The full story of one request for `show`.
pub(super) fn request_details(r: &RequestView) -> std::io::Result<()> {
    out!("{}", render_request_details(r))
}

/// Prints JSON, pretty.
pub(super) fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}
