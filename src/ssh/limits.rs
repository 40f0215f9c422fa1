//! The front door's counters: connections refused at authentication per source address,
//! and commands running per user.
//!
//! Both live in memory only (a restart forgets them) and are guarded by std mutexes held
//! for a few instructions, never across an `.await`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::names::UserName;

/// Addresses tracked before idle entries (full allowance again) are dropped.
const PRUNE_ABOVE: usize = 4096;

/// A token bucket of failed authentications per source address: the full allowance is
/// `per_minute` failures, and it refills at `per_minute` per minute.
#[derive(Debug)]
pub struct FailureLimiter {
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
    pub fn new(per_minute: u32) -> Self {
        FailureLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` has used up its allowance: then even a good key is refused.
    pub fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        let buckets = lock(&self.buckets);
        buckets
            .get(&source(ip))
            .is_some_and(|b| self.refilled(b, now) < 1.0)
    }

    /// Counts one failure from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut buckets = lock(&self.buckets);
        if buckets.len() > PRUNE_ABOVE {
            let full = f64::from(self.per_minute);
            buckets.retain(|_, b| self.refilled(b, now) < full);
        }
        let full = f64::from(self.per_minute);
        let bucket = buckets.entry(source(ip)).or_insert(Bucket {
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
    pub fn forgive(&self, ip: IpAddr) {
        let full = f64::from(self.per_minute);
        if let Some(b) = lock(&self.buckets).get_mut(&source(ip)) {
            b.tokens = (b.tokens + 1.0).min(full);
        }
    }

    fn refilled(&self, b: &Bucket, now: Instant) -> f64 {
        let per_sec = f64::from(self.per_minute) / 60.0;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * per_sec).min(f64::from(self.per_minute))
    }
}

/// The unit one allowance covers: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, which hands out addresses freely).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
        },
    }
}

/// How many commands each user has running; a [`SessionSlot`] is one of them.
#[derive(Debug)]
pub struct SessionCounter {
    max: usize,
    running: Mutex<HashMap<UserName, usize>>,
}

/// One running command of one user; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionSlot {
    counter: Arc<SessionCounter>,
    user: UserName,
}

impl SessionCounter {
    /// A counter allowing `max` running commands per user.
    pub fn new(max: u32) -> Arc<Self> {
        Arc::new(SessionCounter {
            max: max as usize,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `user`, or `None` when they already run `max` commands.
    pub fn try_acquire(self: &Arc<Self>, user: &UserName) -> Option<SessionSlot> {
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
    pub fn max(&self) -> usize {
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
