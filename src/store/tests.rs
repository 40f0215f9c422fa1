//! Unit tests of the store, one file per theme; the helpers they share are here.

mod alone;
mod batch;
mod durability;
mod held;
mod open;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;

/// Submits every operation before awaiting any (so they queue up and share batches),
/// then returns their results in order.
fn submit_all<T: Send + 'static>(
    store: &Store,
    ops: Vec<Box<dyn FnOnce() -> T + Send>>,
) -> Vec<Result<T, StoreError>> {
    let pending: Vec<_> = ops.into_iter().map(|op| store.submit(op)).collect();
    block_on(async {
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await);
        }
        out
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Submits `op` so that it holds its batch open, and returns once it is running: every
/// operation submitted before `release` is sent lands together in the next batch.
fn hold_a_batch<T: Send + 'static>(
    store: &Store,
    op: impl FnOnce() -> T + Send + 'static,
) -> (
    impl std::future::Future<Output = Result<T, StoreError>>,
    std::sync::mpsc::Sender<()>,
) {
    let (running_tx, running_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let held = store.submit(move || {
        let _ = running_tx.send(());
        let _ = release_rx.recv();
        op()
    });
    running_rx.recv().unwrap();
    (held, release_tx)
}

/// Lets the database grow by `pages` more pages only, so writes then fail with
/// SQLITE_FULL as on a full disk.
fn limit_growth(store: &Store, pages: i64) {
    store
        .write(|c| {
            let now: i64 = c.sql().query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.sql().query_row(
                &format!("PRAGMA max_page_count = {}", now + pages),
                [],
                |_| Ok(()),
            )?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
}

fn insert(store: &Store, k: i64, v: Option<&str>) -> Result<(), StoreError> {
    store.write(|c| {
        c.sql()
            .execute(
                "INSERT INTO t (k, v) VALUES (?1, ?2)",
                rusqlite::params![k, v],
            )
            .map(|_| ())
            .map_err(StoreError::from)
    })
}

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    store
        .write(|c| {
            c.sql()
                .execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
                .map_err(StoreError::from)
        })
        .unwrap();
    (dir, Arc::new(store))
}

fn count(store: &Store) -> i64 {
    store
        .read(|c| {
            Ok::<_, StoreError>(
                c.sql()
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))?,
            )
        })
        .unwrap()
}

/// The keys in `t`, in order.
fn keys(store: &Store) -> Vec<i64> {
    store
        .read(|c| {
            let mut stmt = c.sql().prepare("SELECT k FROM t ORDER BY k")?;
            let keys = stmt.query_map([], |r| r.get(0))?;
            Ok::<_, StoreError>(keys.collect::<Result<Vec<i64>, _>>()?)
        })
        .unwrap()
}
