//! Reads sent ahead on a connection (`store/ahead.rs` says what for and when an answer
//! may be used): recording a plan's read instead of sending it, sending a batch's with
//! its BEGIN in one round trip, and answering an operation's first read from them.

use std::future::Future as _;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, SimpleQueryMessage};

use super::Conn;
use super::defer::Held;
use crate::store::StoreError;
use crate::store::ahead::Touch;
use crate::store::sql::Param;

/// The answer of a read sent ahead: the statements and parameters that were sent, and
/// the rows each returned.
pub(super) struct Answer {
    queries: Vec<Held>,
    rows: Vec<Vec<Row>>,
}

impl Answer {
    pub(super) fn new(queries: Vec<Held>, rows: Vec<Vec<Row>>) -> Self {
        Answer { queries, rows }
    }
}

/// The rows of a simple query, each value as text (`None` for NULL).
pub(super) fn text_rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

impl Conn {
    /// A write touched `touches` (`None`: everything): the operation's, kept if it
    /// succeeds, or the transaction's outside an operation.
    pub(in crate::store) fn touch(&self, touches: Option<&[Touch<'_>]>) {
        if !self.op_touched(touches) {
            self.touched.borrow_mut().add(touches);
        }
    }

    /// Whether a write kept by this transaction named nothing it touched.
    pub(in crate::store) fn touched_everything(&self) -> bool {
        self.touched.borrow().everything()
    }

    /// Whether a write kept by this transaction touched any of `reads`.
    pub(super) fn touched_any(&self, reads: &[u64]) -> bool {
        self.touched.borrow().any(reads)
    }

    /// Runs `f` with its first pipelined read recorded instead of sent (statements are
    /// prepared, which may take a round trip the first time, outside any transaction):
    /// the statements with their parameters encoded, or `None` if `f` sent anything
    /// else first.
    pub(super) fn record<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, StoreError>,
    ) -> Option<Vec<Held>> {
        /// Ends the recording however `f` ends (a panic included).
        struct Stop<'c>(&'c Conn);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.recording.set(false);
            }
        }
        self.recorded.take();
        self.recording.set(true);
        let stop = Stop(self);
        // Stopped by its first statement, recorded or not: its result says nothing.
        let _ = f(self);
        drop(stop);
        self.recorded.take()
    }

    /// Records `queries` (see [`Conn::record`]) and stops the caller.
    pub(super) fn record_queries(
        &self,
        queries: &[(&str, &[&dyn Param])],
    ) -> Result<Vec<Vec<Row>>, StoreError> {
        self.recording.set(false);
        let held = queries
            .iter()
            .map(|(sql, params)| Held::new(self.statement(sql)?, params, sql, false))
            .collect::<Result<Vec<_>, _>>();
        if let Ok(held) = held {
            *self.recorded.borrow_mut() = Some(held);
        }
        Err(StoreError::Nested)
    }

    /// Offers the operation about to run the answer of its read sent ahead (`None`:
    /// withdraws any). Taken by its first statement, which gets it only if it is that
    /// read ([`Conn::answer_for`]).
    pub(super) fn offer(&self, answer: Option<Answer>) {
        *self.answer.borrow_mut() = answer;
        self.answered.set(false);
    }

    /// Whether the answer offered last served the read it was for.
    pub(super) fn answered(&self) -> bool {
        self.answered.get()
    }

    /// The rows sent ahead for exactly `queries` (the same statements with the same
    /// parameters), if they were offered; the offer is gone either way.
    pub(super) fn answer_for(&self, queries: &[(&str, &[&dyn Param])]) -> Option<Vec<Vec<Row>>> {
        let answer = self.answer.borrow_mut().take()?;
        let same = answer.queries.len() == queries.len()
            && answer
                .queries
                .iter()
                .zip(queries)
                .all(|(held, (sql, params))| held.sql == *sql && held.same_params(params));
        self.answered.set(same);
        same.then_some(answer.rows)
    }

    /// Runs the simple query `sql` (a transaction's BEGIN and lock) and then `ahead`,
    /// every statement sent before any answer is awaited: one round trip. The simple
    /// query's rows as text, and each read's rows.
    #[allow(clippy::type_complexity)]
    pub(super) fn simple_then(
        &self,
        sql: &str,
        ahead: &[&[Held]],
    ) -> Result<(Vec<Vec<Option<String>>>, Vec<Vec<Vec<Row>>>), StoreError> {
        self.answer.take();
        let params: Vec<Vec<Vec<&(dyn ToSql + Sync)>>> = ahead
            .iter()
            .map(|reads| reads.iter().map(Held::params).collect())
            .collect();
        let simple = Box::pin(self.client.simple_query(sql));
        let mut reads: Vec<_> = ahead
            .iter()
            .zip(&params)
            .flat_map(|(reads, params)| reads.iter().zip(params))
            .map(|(held, params)| Box::pin(self.client.query(&held.statement, params)))
            .collect();
        let (messages, rows) = self.wait(async move {
            // The BEGIN is polled first, so it goes out first; then each read in order.
            let mut simple = simple;
            let mut messages = None;
            let mut rows: Vec<Option<Vec<Row>>> = reads.iter().map(|_| None).collect();
            std::future::poll_fn(|cx| {
                use std::task::Poll;
                let mut waiting = false;
                if messages.is_none() {
                    match simple.as_mut().poll(cx) {
                        Poll::Ready(Ok(m)) => messages = Some(m),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => waiting = true,
                    }
                }
                for (read, out) in reads.iter_mut().zip(rows.iter_mut()) {
                    if out.is_some() {
                        continue;
                    }
                    match read.as_mut().poll(cx) {
                        Poll::Ready(Ok(r)) => *out = Some(r),
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => waiting = true,
                    }
                }
                if waiting {
                    Poll::Pending
                } else {
                    Poll::Ready(Ok(()))
                }
            })
            .await?;
            Ok((messages.unwrap_or_default(), rows))
        })?;
        let mut rows = rows.into_iter().map(Option::unwrap_or_default);
        let answers = ahead
            .iter()
            .map(|reads| rows.by_ref().take(reads.len()).collect())
            .collect();
        Ok((text_rows(&messages), answers))
    }
}
