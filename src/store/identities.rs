//! Who each person is at the identity provider, for the operator's `countersign identity`
//! commands (binding happens at sign-in: `sessions::bind_identity`).

use super::sessions::user_from;
use super::{StoreError, Tx};
use crate::names::UserName;

/// A user name bound to a person of the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The user name.
    pub user: UserName,
    /// The provider (`iss`).
    pub issuer: String,
    /// The person there (`sub`).
    pub subject: String,
    /// Bound at (Unix seconds).
    pub bound_at: i64,
}

/// The columns [`binding`] reads.
const COLUMNS: &str = "\"user\", issuer, subject, bound_at";

fn binding(r: &super::sql::Row<'_>) -> Result<Binding, StoreError> {
    Ok(Binding {
        user: user_from(r.get(0)?)?,
        issuer: r.get(1)?,
        subject: r.get(2)?,
        bound_at: r.get(3)?,
    })
}

/// Every binding, by user name.
pub fn all(tx: &Tx<'_>) -> Result<Vec<Binding>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM identities ORDER BY \"user\"");
    tx.all(&sql, &[], binding)
}

/// Removes the binding of `user`; what it was, if there was one.
pub fn unbind(tx: &Tx<'_>, user: &UserName) -> Result<Option<Binding>, StoreError> {
    let found = all_of(tx, user)?;
    if found.is_some() {
        tx.exec(
            "DELETE FROM identities WHERE \"user\" = ?1",
            &[&user.as_str()],
        )?;
    }
    Ok(found)
}

fn all_of(tx: &Tx<'_>, user: &UserName) -> Result<Option<Binding>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM identities WHERE \"user\" = ?1");
    tx.opt(&sql, &[&user.as_str()], binding)
}
