//! Work to do once the transaction that asked for it has committed: the metrics count
//! what is durable, never what was rolled back ([`Tx::after_commit`](super::Tx::after_commit)).
//!
//! Kept per thread: a transaction runs on one thread from BEGIN to COMMIT. Each place
//! that ends a write transaction settles the queue: [`run`] after a COMMIT that
//! succeeded, [`discard`] otherwise; a write undone alone inside a batch (its SAVEPOINT
//! rolled back) drops what it queued with [`undo_to`]. A transaction that began with work
//! left queued (a path that forgot to settle) drops it first, so a count is at worst
//! missed, never made for something that did not commit.

use std::cell::RefCell;

thread_local! {
    static QUEUED: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Queues `f` for after the COMMIT of this thread's write transaction.
pub(super) fn push(f: Box<dyn FnOnce()>) {
    QUEUED.with(|q| q.borrow_mut().push(f));
}

/// Where the queue stands, for [`undo_to`].
pub(super) fn mark() -> usize {
    QUEUED.with(|q| q.borrow().len())
}

/// Drops what was queued since `mark` (the write that queued it was undone).
pub(super) fn undo_to(mark: usize) {
    let dropped: Vec<_> = QUEUED.with(|q| {
        let mut q = q.borrow_mut();
        let at = mark.min(q.len());
        q.split_off(at)
    });
    drop(dropped);
}

/// Drops everything queued (the transaction did not commit, or is about to begin).
pub(super) fn discard() {
    let dropped = QUEUED.with(|q| std::mem::take(&mut *q.borrow_mut()));
    drop(dropped);
}

/// Runs everything queued, in order (the transaction committed).
pub(super) fn run() {
    // Taken first: the work may itself use the store (it should not), which would find
    // the queue borrowed.
    let queued = QUEUED.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for f in queued {
        f();
    }
}

/// Settles the queue by a transaction's outcome: [`run`] on `Ok`, else [`discard`].
pub(super) fn settle<T, E>(outcome: &Result<T, E>) {
    if outcome.is_ok() { run() } else { discard() }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    type Work = Box<dyn FnOnce()>;

    fn counter() -> (Rc<Cell<u32>>, impl Fn() -> Work) {
        let n = Rc::new(Cell::new(0));
        let m = n.clone();
        (n, move || {
            let m = m.clone();
            Box::new(move || m.set(m.get() + 1))
        })
    }

    #[test]
    fn work_runs_only_after_a_commit_and_once() {
        let (n, work) = counter();
        discard();
        push(work());
        push(work());
        settle(&Err::<(), ()>(()));
        run();
        assert_eq!(n.get(), 0, "a rollback drops the queue");
        push(work());
        settle(&Ok::<(), ()>(()));
        run();
        assert_eq!(n.get(), 1);
    }

    #[test]
    fn an_undone_write_drops_only_its_own_work() {
        let (n, work) = counter();
        discard();
        push(work());
        let mark = mark();
        push(work());
        push(work());
        undo_to(mark);
        run();
        assert_eq!(n.get(), 1);
    }
}
