//! A cap on the sign-in endpoints (`/v1/oidc/*`) per client address: they need no
//! credential, and most of them write (a sign-in in progress, a device login), so one
//! address gets `[server] sign_in_requests_per_minute` requests a minute (default 60; an
//! IPv6 client its whole /64); past that, 429 `rate_limited` with `Retry-After` until its
//! minute ends. A CLI polling a device login uses 12 a minute; a sign-in about 5.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::server::ClientAddr;
use super::{ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::net::network_of;

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most (memory stays bounded under a flood from many addresses).
const MAX_TRACKED: usize = 100_000;

/// Counts sign-in requests per address in fixed one-minute windows.
#[derive(Debug)]
pub(super) struct SignInLimiter {
    /// Requests one address may make in a minute.
    per_minute: u32,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl SignInLimiter {
    /// A limiter allowing `per_minute` requests a minute per address.
    pub(super) fn new(per_minute: u32) -> Self {
        SignInLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request from `addr` at `now`: `Err(seconds to wait)` past the cap.
    fn take(&self, addr: IpAddr, now: Instant) -> Result<(), u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if !windows.contains_key(&addr) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if windows.len() >= MAX_TRACKED {
                // Too many addresses at once to keep count: fail closed.
                return Err(WINDOW.as_secs());
            }
        }
        let (since, used) = windows.entry(addr).or_insert((now, 0));
        if now.duration_since(*since) >= WINDOW {
            *since = now;
            *used = 0;
        }
        if *used >= self.per_minute {
            let left = (*since + WINDOW).saturating_duration_since(now);
            return Err(left.as_secs() + u64::from(left.subsec_nanos() > 0));
        }
        *used += 1;
        Ok(())
    }
}

/// Middleware for the `/v1/oidc/*` routes.
pub(super) async fn limit_sign_in(
    State((state, limiter)): State<(AppState, Arc<SignInLimiter>)>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<ClientAddr>().map(|c| c.0.ip());
    if let Some(peer) = peer {
        let trusted = &state.config().server.limits.trusted_proxies;
        let client = super::forwarded::client_ip(peer, req.headers(), trusted);
        if let Err(wait) = limiter.take(network_of(client), Instant::now()) {
            tracing::warn!(%client, "too many sign-in requests from one address");
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::RateLimited,
                format!("too many sign-in requests from this address; retry in {wait} s"),
            )
            .with_retry_after(wait)
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_minute_and_others_are_not_held() {
        let l = SignInLimiter::new(60);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..60 {
            assert_eq!(l.take(a, t0), Ok(()));
        }
        let wait = l.take(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, 50);
        assert_eq!(l.take(b, t0), Ok(()));
        assert_eq!(l.take(a, t0 + WINDOW), Ok(()), "a new minute");
    }
}
