//! One way to run a statement on either backend: the query functions of `store/` write
//! their SQL once, with `?1`-style placeholders, and bind values and read columns through
//! the traits here, which both SQLite (rusqlite) and PostgreSQL (tokio-postgres) accept.
//!
//! The SQL is the subset both engines read alike. What differs is kept small and visible:
//! [`translate`] turns `?N` into `$N` and drops SQLite's `INDEXED BY` hints for
//! PostgreSQL, and a query that needs more asks [`Tx::is_postgres`](super::Tx::is_postgres).
//! Integers are 64-bit (`BIGINT` on PostgreSQL), text is text, and a column named `user`
//! is always written `"user"` (a reserved word there).

use std::borrow::Cow;

use tokio_postgres::types::{FromSql as PgFromSql, ToSql as PgToSql};

use super::StoreError;

/// A value bound to a statement: any type both backends can bind (`i64`, `&str`,
/// `String`, `bool`, `Option` of those).
pub(super) trait Param {
    /// As SQLite binds it.
    fn lite(&self) -> &dyn rusqlite::ToSql;
    /// As PostgreSQL binds it.
    fn pg(&self) -> &(dyn PgToSql + Sync);
}

impl<T: rusqlite::ToSql + PgToSql + Sync> Param for T {
    fn lite(&self) -> &dyn rusqlite::ToSql {
        self
    }

    fn pg(&self) -> &(dyn PgToSql + Sync) {
        self
    }
}

/// A column type both backends can read.
pub(super) trait Col: rusqlite::types::FromSql + for<'a> PgFromSql<'a> {}

impl<T: rusqlite::types::FromSql + for<'a> PgFromSql<'a>> Col for T {}

/// One result row, of either backend.
pub(super) enum Row<'r> {
    /// A SQLite row.
    Lite(&'r rusqlite::Row<'r>),
    /// A PostgreSQL row.
    Pg(&'r tokio_postgres::Row),
}

impl Row<'_> {
    /// Column `i` (from 0) as `T`; a value of another type is a storage error.
    pub(super) fn get<T: Col>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Lite(r) => Ok(r.get(i)?),
            Row::Pg(r) => r
                .try_get(i)
                .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}"))),
        }
    }

    /// Column `i` as borrowed text (`None` for NULL), without a copy: for the scans that
    /// read the whole audit log. A value that is not text is a storage error.
    pub(super) fn text(&self, i: usize) -> Result<Option<&str>, StoreError> {
        match self {
            Row::Lite(r) => r.get_ref(i)?.as_str_or_null().map_err(|e| {
                StoreError::from(rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                ))
            }),
            Row::Pg(r) => r
                .try_get::<_, Option<&str>>(i)
                .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}"))),
        }
    }
}

/// A stored value that does not parse: someone edited the database by hand.
pub(super) fn corrupt(what: &str, value: &str, cause: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stored {what} {value:?} does not parse: {cause}"))
}

/// `sql` as PostgreSQL reads it: `?N` placeholders become `$N`, and SQLite's
/// `INDEXED BY name` and `NOT INDEXED` hints go (PostgreSQL's planner picks indexes
/// itself). Quoted text and identifiers are left alone.
pub(super) fn translate(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') && !sql.contains("INDEXED") {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => out.push('$'),
            None if sql[at..].starts_with("NOT INDEXED") => {
                for _ in 1.."NOT INDEXED".len() {
                    chars.next();
                }
            }
            None if sql[at..].starts_with("INDEXED BY ") => {
                // Skip the two words and the name after them.
                let rest = &sql[at + "INDEXED BY ".len()..];
                let name = rest
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .unwrap_or(rest.len());
                let skip = "INDEXED BY ".len() + name;
                for _ in 1..skip {
                    chars.next();
                }
            }
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `sql` with every placeholder `?N` outside quotes made `?(N + by)`: for joining
/// statements into one (`pg/defer.rs`).
pub(super) fn renumber(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                let mut n = 0usize;
                let mut digits = false;
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    n = n * 10 + d as usize;
                    digits = true;
                    chars.next();
                }
                if digits {
                    out.push_str(&(n + by).to_string());
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{renumber, translate};

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumber("INSERT INTO t VALUES (?1, '?2', ?12, \"?3\")", 4),
            "INSERT INTO t VALUES (?5, '?2', ?16, \"?3\")"
        );
        assert_eq!(renumber("SELECT 1", 3), "SELECT 1");
    }

    #[test]
    fn placeholders_and_index_hints_are_translated_outside_quotes() {
        assert_eq!(
            translate(
                "SELECT 1 FROM requests INDEXED BY requests_pending WHERE a = ?1 AND b = ?12"
            ),
            "SELECT 1 FROM requests  WHERE a = $1 AND b = $12"
        );
        assert_eq!(
            translate("SELECT '?1', \"user\" FROM t WHERE x = ?2"),
            "SELECT '?1', \"user\" FROM t WHERE x = $2"
        );
        assert_eq!(translate("SELECT 1"), "SELECT 1");
        assert_eq!(
            translate("SELECT max(seq) FROM audit NOT INDEXED WHERE s = 'NOT INDEXED'"),
            "SELECT max(seq) FROM audit  WHERE s = 'NOT INDEXED'"
        );
    }
}
