//! Statements without parameters (transaction control, DDL, the write lock) on a
//! connection, with their answers as text: the simple query protocol.

use super::conn::Conn;
use crate::store::StoreError;

impl Conn {
    /// Runs statements without parameters in one message (one round trip) and returns
    /// the rows they returned, in order, each value as text (`None` for NULL).
    pub(in crate::store) fn simple_rows(
        &self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, StoreError> {
        self.release_held(true);
        let messages = self.wait(self.client.simple_query(sql))?;
        Ok(rows_of(&messages))
    }

    /// [`Conn::batch`] of `first` and [`Conn::simple_rows`] of `second`, as two messages
    /// sent together (one round trip), each with its own outcome: a failure of `second`
    /// says nothing of `first`, whose answer came before.
    pub(in crate::store) fn batch_then_rows(
        &self,
        first: &str,
        second: &str,
    ) -> (Result<(), StoreError>, Result<TextRows, StoreError>) {
        self.release_held(true);
        let client = &self.client;
        let both = async move {
            let (a, b) = tokio::join!(client.batch_execute(first), client.simple_query(second));
            Ok::<_, tokio_postgres::Error>((a, b))
        };
        match self.wait(both) {
            Ok((a, b)) => (
                a.map_err(StoreError::from_pg),
                b.map_err(StoreError::from_pg).map(|m| rows_of(&m)),
            ),
            Err(e) => {
                let again = StoreError::Unavailable(e.to_string());
                (Err(e), Err(again))
            }
        }
    }

    /// Runs statements without parameters (transaction control, DDL).
    pub(in crate::store) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.release_held(true);
        self.wait(self.client.batch_execute(sql))
    }
}

/// Rows of a simple query's answer, each value as text (`None` for NULL).
pub(in crate::store) type TextRows = Vec<Vec<Option<String>>>;

/// The rows of a simple query's answer.
fn rows_of(messages: &[tokio_postgres::SimpleQueryMessage]) -> TextRows {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}
