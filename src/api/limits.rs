//! Abuse limits inside the router: time per request, requests in flight, and failed
//! authentications per client address and per token.
//!
//! Failed authentications are counted in fixed windows. Once a client address (an IPv6
//! client's whole /64) or a token has used up its failures, every authenticated request
//! from it is answered 429 `rate_limited` with `Retry-After` until the window ends — even
//! with a good token, so that the answer never tells a guesser whether a guess was right.
//! Tokens are tracked by their SHA-256 only; the token itself is never kept or logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::ApiError;
use crate::config::Limits;
use crate::error_code::ErrorCode;
use crate::net::network_of;

/// Most keys the failure counters track; past it, old windows are dropped first and new
/// keys are not tracked until there is room (memory stays bounded under a flood).
const MAX_TRACKED: usize = 100_000;

/// Time and concurrency limits, shared by every request.
#[derive(Debug)]
pub(super) struct RequestGuards {
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl RequestGuards {
    pub(super) fn new(limits: &Limits) -> Self {
        RequestGuards {
            timeout: limits.request_timeout,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        }
    }
}

/// Middleware: 503 `overloaded` when too many requests are in flight, 503 `timeout` when
/// one takes longer than `request_timeout` (reading a slow body included).
pub(super) async fn guard_request(
    State(guards): State<Arc<RequestGuards>>,
    req: Request,
    next: Next,
) -> Response {
    // The health and readiness checks are exempt: a busy server is neither dead nor one a
    // load balancer should take out of rotation (they have their own limit of waiting
    // checks).
    let permit = guards.in_flight.clone().try_acquire_owned();
    let check = matches!(req.uri().path(), "/v1/health" | "/v1/ready");
    if permit.is_err() && !check {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Overloaded,
            "too many requests in progress; retry shortly",
        )
        .with_retry_after(1)
        .into_response();
    }
    match tokio::time::timeout(guards.timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout,
            format!(
                "the request took longer than {}s; read its state before retrying",
                guards.timeout.as_secs()
            ),
        )
        .into_response(),
    }
}

/// A token as the limiter knows it: its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct TokenId([u8; 32]);

impl TokenId {
    pub(super) fn of(token: &str) -> Self {
        TokenId(Sha256::digest(token.as_bytes()).into())
    }

    /// Eight hex digits of the hash, to correlate log lines without revealing the token.
    pub(super) fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Token(TokenId),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    since: Instant,
    failures: u32,
}

/// Counts failed authentications and says when a client must wait.
#[derive(Debug)]
pub struct AuthLimiter {
    per_address: u32,
    per_token: u32,
    window: Duration,
    windows: Mutex<HashMap<Key, Window>>,
}

impl AuthLimiter {
    /// A limiter with the configured allowances.
    pub fn new(limits: &Limits) -> Self {
        AuthLimiter {
            per_address: limits.auth_failures_per_address,
            per_token: limits.auth_failures_per_token,
            window: limits.auth_failure_window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when the address or the token has no failures left.
    pub(super) fn check(&self, addr: Option<IpAddr>, token: Option<TokenId>) -> Result<(), u64> {
        let now = Instant::now();
        let windows = self.lock();
        let wait = keys(addr, token)
            .filter_map(|key| {
                let w = windows.get(&key)?;
                let left = (w.since + self.window).checked_duration_since(now)?;
                (w.failures >= self.allowance(&key)).then_some(left)
            })
            .max();
        match wait {
            Some(left) => Err(left.as_secs() + u64::from(left.subsec_nanos() > 0)),
            None => Ok(()),
        }
    }

    /// Records one failed authentication against the address and the token.
    pub(super) fn failed(&self, addr: Option<IpAddr>, token: Option<TokenId>) {
        let now = Instant::now();
        let mut windows = self.lock();
        for key in keys(addr, token) {
            if !windows.contains_key(&key) && windows.len() >= MAX_TRACKED {
                windows.retain(|_, w| now.duration_since(w.since) < self.window);
                if windows.len() >= MAX_TRACKED {
                    continue;
                }
            }
            let w = windows.entry(key).or_insert(Window {
                since: now,
                failures: 0,
            });
            if now.duration_since(w.since) >= self.window {
                *w = Window {
                    since: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    fn allowance(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.per_address,
            Key::Token(_) => self.per_token,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        // The map holds only counters; a panic elsewhere cannot leave it inconsistent.
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn keys(addr: Option<IpAddr>, token: Option<TokenId>) -> impl Iterator<Item = Key> {
    addr.map(|a| Key::Address(network_of(a)))
        .into_iter()
        .chain(token.map(Key::Token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_address: u32, per_token: u32) -> AuthLimiter {
        AuthLimiter::new(&Limits {
            auth_failures_per_address: per_address,
            auth_failures_per_token: per_token,
            auth_failure_window: Duration::from_secs(60),
            ..Limits::default()
        })
    }

    #[test]
    fn an_address_is_limited_after_its_failures_and_others_are_not() {
        let l = limiter(2, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        l.failed(Some(a), None);
        assert_eq!(l.check(Some(a), None), Ok(()));
        l.failed(Some(a), None);
        let wait = l.check(Some(a), None).unwrap_err();
        assert!((59..=60).contains(&wait), "{wait}");
        assert_eq!(l.check(Some(b), None), Ok(()));
    }

    #[test]
    fn a_token_is_limited_from_any_address() {
        let l = limiter(100, 1);
        let t = TokenId::of("cs_guess");
        l.failed(Some("192.0.2.1".parse().unwrap()), Some(t));
        assert!(
            l.check(Some("198.51.100.7".parse().unwrap()), Some(t))
                .is_err()
        );
        assert!(
            l.check(
                Some("198.51.100.7".parse().unwrap()),
                Some(TokenId::of("cs_other"))
            )
            .is_ok()
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let l = limiter(1, 100);
        l.failed(Some("2001:db8:1:2::1".parse().unwrap()), None);
        assert!(
            l.check(Some("2001:db8:1:2:ffff::9".parse().unwrap()), None)
                .is_err()
        );
        assert!(
            l.check(Some("2001:db8:1:3::1".parse().unwrap()), None)
                .is_ok()
        );
    }
}
