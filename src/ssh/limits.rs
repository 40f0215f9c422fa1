//! The front door's counters: connections refused at authentication per source address,
//! open connections per source address, open channels per connection, and commands
//! running per user.
//!
//! A source address is an IPv4 address or an IPv6 /64 ([`network_of`], as the HTTP side
//! counts). All live in memory only (a restart forgets them) and are guarded by std
//! mutexes held for a few instructions, never across an `.await`.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use russh::ChannelId;

use crate::names::UserName;
use crate::net::network_of;

/// Addresses tracked before idle entries (full allowance again) are dropped.
const PRUNE_ABOVE: usize = 4096;

/// A token bucket of failed authentications per source address: the full allowance is
/// `per_minute` failures, and it refills at `per_minute` per minute.
#[derive(Debug)]
pub(super) struct FailureLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FailureLimiter {
    /// A limiter allowing `per_minute` failures per address and minute.
    pub(super) fn new(per_minute: u32) -> Self {
        FailureLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its allowance: then even a good key is refused.
    pub(super) fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let buckets = lock(&self.buckets);
        buckets
            .get(&network_of(ip))
            .is_some_and(|b| self.refilled(b, now) < 1.0)
    }

    /// Counts one failure from `ip`.
    pub(super) fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut buckets = lock(&self.buckets);
        if buckets.len() > PRUNE_ABOVE {
            let full = f64::from(self.per_minute);
            buckets.retain(|_, b| self.refilled(b, now) < full);
        }
        let full = f64::from(self.per_minute);
        let bucket = buckets.entry(network_of(ip)).or_insert(Bucket {
            tokens: full,
            at: now,
        });
        let tokens = self.refilled(bucket, now);
        *bucket = Bucket {
            tokens: (tokens - 1.0).max(0.0),
            at: now,
        };
    }

    /// Takes back one failure of `ip` (the connection authenticated after all).
    pub(super) fn forgive(&self, ip: IpAddr) {
        let full = f64::from(self.per_minute);
        if let Some(b) = lock(&self.buckets).get_mut(&network_of(ip)) {
            b.tokens = (b.tokens + 1.0).min(full);
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let per_sec = f64::from(self.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * per_sec).min(f64::from(self.per_minute))
    }
}

/// Open connections per source address: one address may not hold every connection slot
/// (silent TCP connections reopened as they time out). An [`AddressSlot`] is one of them.
#[derive(Debug)]
pub(super) struct ConnectionsPerAddress {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of one source address; dropping it gives the place back.
#[derive(Debug)]
pub(super) struct AddressSlot {
    table: Arc<ConnectionsPerAddress>,
    key: IpAddr,
}

impl ConnectionsPerAddress {
    /// A table allowing `max` open connections per source address.
    pub(super) fn new(max: u32) -> Arc<Self> {
        Arc::new(ConnectionsPerAddress {
            max: max as usize,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a connection from `ip`, or `None` when its address has `max` open.
    /// (Entries exist only for addresses with open connections, so the table is bounded
    /// by the connections the server holds.)
    pub(super) fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = network_of(ip);
        let mut open = lock(&self.open);
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.table.open);
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The channels one connection has open, at most `max`: each holds server memory until
/// it is closed, so an authenticated client may not open them without end.
#[derive(Debug)]
pub(super) struct OpenChannels {
    max: usize,
    open: Mutex<HashSet<ChannelId>>,
}

/// Closes a channel's place when dropped: held by the task running the channel's command,
/// so that the place is free once the command ends (the server closes the channel then)
/// or is aborted.
#[derive(Debug)]
pub(super) struct ChannelRelease {
    channels: Arc<OpenChannels>,
    id: ChannelId,
}

impl OpenChannels {
    /// Room for `max` open channels.
    pub(super) fn new(max: u32) -> Arc<Self> {
        Arc::new(OpenChannels {
            max: max as usize,
            open: Mutex::new(HashSet::new()),
        })
    }

    /// Counts `id` as open, unless `max` channels already are.
    pub(super) fn try_open(&self, id: ChannelId) -> bool {
        let mut open = lock(&self.open);
        if open.len() >= self.max {
            return false;
        }
        open.insert(id);
        true
    }

    /// Whether `id` holds a place.
    pub(super) fn is_open(&self, id: ChannelId) -> bool {
        lock(&self.open).contains(&id)
    }

    /// Frees `id`'s place (nothing if it was already freed).
    pub(super) fn close(&self, id: ChannelId) {
        lock(&self.open).remove(&id);
    }

    /// A guard that frees `id`'s place when dropped.
    pub(super) fn release_on_drop(self: &Arc<Self>, id: ChannelId) -> ChannelRelease {
        ChannelRelease {
            channels: self.clone(),
            id,
        }
    }

    /// The most channels one connection may have open.
    pub(super) fn max(&self) -> usize {
        self.max
    }
}

impl Drop for ChannelRelease {
    fn drop(&mut self) {
        self.channels.close(self.id);
    }
}

/// How many commands each user has running; a [`SessionSlot`] is one of them.
#[derive(Debug)]
pub(super) struct SessionCounter {
    max: usize,
    running: Mutex<HashMap<UserName, usize>>,
}

/// One running command of one user; dropping it frees the slot.
#[derive(Debug)]
pub(super) struct SessionSlot {
    counter: Arc<SessionCounter>,
    user: UserName,
}

impl SessionCounter {
    /// A counter allowing `max` running commands per user.
    pub(super) fn new(max: u32) -> Arc<Self> {
        Arc::new(SessionCounter {
            max: max as usize,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `user`, or `None` when they already run `max` commands.
    pub(super) fn try_acquire(self: &Arc<Self>, user: &UserName) -> Option<SessionSlot> {
        let mut running = lock(&self.running);
        let n = running.entry(user.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            counter: self.clone(),
            user: user.clone(),
        })
    }

    /// The most commands one user may run at once.
    pub(super) fn max(&self) -> usize {
        self.max
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut running = lock(&self.counter.running);
        if let Some(n) = running.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.user);
            }
        }
    }
}

/// A poisoned lock only means another thread panicked mid-update of a counter; the
/// counts are still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn an_address_is_blocked_after_its_allowance_and_refills_over_time() {
        let limiter = FailureLimiter::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(!limiter.is_blocked(IP, t0));
            limiter.record_failure(IP, t0);
        }
        assert!(limiter.is_blocked(IP, t0));
        assert!(!limiter.is_blocked("10.0.0.1".parse().unwrap(), t0));
        // One attempt comes back every 20 s.
        assert!(limiter.is_blocked(IP, t0 + Duration::from_secs(19)));
        assert!(!limiter.is_blocked(IP, t0 + Duration::from_secs(20)));
    }

    #[test]
    fn a_forgiven_failure_is_given_back() {
        let limiter = FailureLimiter::new(1);
        let t0 = Instant::now();
        limiter.record_failure(IP, t0);
        limiter.forgive(IP);
        assert!(!limiter.is_blocked(IP, t0));
        limiter.forgive(IP);
        limiter.record_failure(IP, t0);
        assert!(
            limiter.is_blocked(IP, t0),
            "never more than the full allowance"
        );
    }

    #[test]
    fn one_ipv6_network_shares_one_allowance() {
        let limiter = FailureLimiter::new(1);
        let t0 = Instant::now();
        limiter.record_failure("2001:db8::1".parse().unwrap(), t0);
        assert!(limiter.is_blocked("2001:db8::ffff:1".parse().unwrap(), t0));
        assert!(!limiter.is_blocked("2001:db8:0:1::1".parse().unwrap(), t0));
    }

    #[test]
    fn connections_per_address_are_bounded_and_freed_on_drop() {
        let table = ConnectionsPerAddress::new(2);
        let a1 = table.try_admit(IP).unwrap();
        let _a2 = table.try_admit(IP).unwrap();
        assert!(table.try_admit(IP).is_none());
        assert!(table.try_admit("10.0.0.1".parse().unwrap()).is_some());
        drop(a1);
        let _a3 = table.try_admit(IP).unwrap();
        assert!(table.try_admit(IP).is_none());
    }

    #[test]
    fn one_ipv6_network_shares_one_connection_count() {
        let table = ConnectionsPerAddress::new(1);
        let _held = table.try_admit("2001:db8::1".parse().unwrap()).unwrap();
        assert!(
            table
                .try_admit("2001:db8::ffff:1".parse().unwrap())
                .is_none()
        );
        assert!(
            table
                .try_admit("2001:db8:0:1::1".parse().unwrap())
                .is_some()
        );
        // An IPv4 client on a dual-stack listener is its IPv4 address.
        let _v4 = table.try_admit("192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            table
                .try_admit("::ffff:192.0.2.7".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn an_emptied_address_leaves_the_table() {
        let table = ConnectionsPerAddress::new(1);
        drop(table.try_admit(IP).unwrap());
        assert!(lock(&table.open).is_empty());
    }

    #[test]
    fn sessions_per_user_are_bounded_and_freed_on_drop() {
        let counter = SessionCounter::new(2);
        let alice = UserName::parse("alice").unwrap();
        let bob = UserName::parse("bob").unwrap();
        let a1 = counter.try_acquire(&alice).unwrap();
        let _a2 = counter.try_acquire(&alice).unwrap();
        assert!(counter.try_acquire(&alice).is_none());
        assert!(counter.try_acquire(&bob).is_some());
        drop(a1);
        assert!(counter.try_acquire(&alice).is_some());
    }
}
