//! The device flow of `countersign login --device` (RFC 8628), where countersign is the
//! device authorization server of its own CLI: the CLI gets a device code (its secret)
//! and a user code (`XXXX-XXXX`, for the person); the person opens
//! `{public_url}/v1/oidc/device?user_code=...` in any browser, sees which host and
//! address asked, confirms, and signs in at the provider; the CLI polls
//! `POST /v1/oidc/token` until the session is ready. A login the person did not start
//! is what this flow's confirm page warns about: someone who sends a victim the link
//! gets a session only if the victim confirms and signs in.

use std::net::IpAddr;

use super::signin::{SignedInPerson, failed, oidc_of};
use super::{NewSession, Service, ServiceError, disabled_error};
use crate::names::UserName;
use crate::oidc::{Pending, SignedIn, random_token};
use crate::store::device::{self, DeviceLogin, Ending, NewDeviceLogin, Poll};
use crate::store::sessions::{self, LoginRow};
use crate::store::users as disabled;

/// How sessions made by the device flow are listed (`via`); they never approve.
pub const DEVICE_VIA: &str = "oidc-device";
/// The `grant_type` of a poll (RFC 8628, 3.4).
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// How long the person has to confirm and sign in.
const LIFETIME_SECONDS: i64 = 600;
/// Seconds between polls at first.
const INTERVAL_SECONDS: i64 = 5;
/// What `slow_down` adds to the interval (RFC 8628, 3.5).
const SLOW_DOWN_SECONDS: i64 = 5;
/// Device logins waiting at once, at most (asking for one needs no credential): past
/// it, the oldest are forgotten.
const MAX_WAITING: i64 = 10_000;
/// The user code's letters: consonants only, no vowels to spell words, none that look
/// alike (RFC 8628, 6.1): 20^8, about 2^34.6 codes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// How long a sign-in for a device login may take at the provider.
const SIGN_IN_SECONDS: i64 = 600;

/// What the CLI gets to start a device login (RFC 8628, 3.2).
#[derive(Debug, Clone)]
pub struct DeviceGrant {
    /// The CLI's secret to poll with.
    pub device_code: String,
    /// What the person checks on the page: `XXXX-XXXX`.
    pub user_code: String,
    /// Seconds until it is over.
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

/// Why a poll brings no session yet, as RFC 8628 (3.5) and RFC 6749 (5.2) name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceWait {
    /// `authorization_pending`.
    Pending,
    /// `slow_down`.
    SlowDown,
    /// `access_denied`, with why.
    Denied(String),
    /// `expired_token`.
    Expired,
    /// `invalid_grant`: no such device code, or it was used.
    Unknown,
}

impl DeviceWait {
    /// The `error` of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            DeviceWait::Pending => "authorization_pending",
            DeviceWait::SlowDown => "slow_down",
            DeviceWait::Denied(_) => "access_denied",
            DeviceWait::Expired => "expired_token",
            DeviceWait::Unknown => "invalid_grant",
        }
    }

    /// The `error_description` of the answer.
    pub fn description(&self) -> String {
        match self {
            DeviceWait::Pending => "waiting for the person to confirm and sign in".into(),
            DeviceWait::SlowDown => {
                format!("polled too soon; wait {SLOW_DOWN_SECONDS} s longer between polls")
            }
            DeviceWait::Denied(why) => why.clone(),
            DeviceWait::Expired => "the device login is over; run `countersign login` again".into(),
            DeviceWait::Unknown => "unknown or already used device code".into(),
        }
    }
}

/// `XXXXXXXX` from what a person typed (`xxxx-xxxx`, spaces, lower case), if it can be a
/// user code.
fn normalize_user_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == 8 && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// `XXXX-XXXX`, for showing.
pub fn format_user_code(code: &str) -> String {
    match (code.get(..4), code.get(4..)) {
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => code.to_owned(),
    }
}

/// The host name the CLI gave, made safe to show: letters, digits, `.`, `-`, `_`, at
/// most 64; otherwise "(not given)".
fn clean_host(host: &str) -> String {
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(64)
        .collect();
    if host.is_empty() {
        "(not given)".into()
    } else {
        host
    }
}

fn new_user_code() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rand::RngExt::random_range(&mut rng, 0..ALPHABET.len())]))
        .collect()
}

fn over() -> ServiceError {
    failed("no device login waits under this code: it is over, was used, or was mistyped")
}

impl Service {
    /// Starts a device login for a CLI on `host` (its word) at `address` (what the server
    /// saw).
    pub fn start_device_login(
        &self,
        host: &str,
        address: IpAddr,
        step_up: bool,
    ) -> Result<DeviceGrant, ServiceError> {
        if !oidc_of(&self.config())?.device_flow {
            return Err(failed(
                "the device flow is turned off on this server ([oidc] device_flow = false): \
                 sign in with `countersign login --loopback`",
            ));
        }
        let now = self.now().timestamp();
        let device_code = random_token();
        let host = clean_host(host);
        let address = address.to_string();
        self.store.write(|tx| {
            let mut user_code = new_user_code();
            while device::user_code_taken(tx, &user_code)? {
                user_code = new_user_code();
            }
            let login = NewDeviceLogin {
                device_code: &device_code,
                user_code: &user_code,
                client_host: &host,
                client_address: &address,
                step_up,
                interval: INTERVAL_SECONDS,
            };
            let n = device::insert(tx, &login, now, now + LIFETIME_SECONDS)?;
            // Full: the oldest waiting go (a flood costs the logins older than it, which
            // start again, instead of refusing every new one for ten minutes).
            if n > MAX_WAITING {
                device::evict_oldest(tx, n - MAX_WAITING)?;
            }
            Ok(DeviceGrant {
                device_code: device_code.clone(),
                user_code: format_user_code(&user_code),
                expires_in: LIFETIME_SECONDS,
                interval: INTERVAL_SECONDS,
            })
        })
    }

    /// The device login waiting under `user_code`, for the page that asks to confirm it.
    pub fn device_login(&self, user_code: &str) -> Result<DeviceLogin, ServiceError> {
        let code = normalize_user_code(user_code).ok_or_else(over)?;
        let now = self.now().timestamp();
        self.store
            .read(|tx| device::waiting_by_user_code(tx, &code, now))?
            .ok_or_else(over)
    }

    /// The person refused the device login under `user_code`: its CLI hears
    /// `access_denied`.
    pub fn refuse_device_login(&self, user_code: &str) -> Result<DeviceLogin, ServiceError> {
        let code = normalize_user_code(user_code).ok_or_else(over)?;
        let now = self.now().timestamp();
        self.store.write(|tx| {
            let login = device::waiting_by_user_code(tx, &code, now)?.ok_or_else(over)?;
            let why = Ending::Refused("the person refused this login in the browser");
            device::end(tx, &login.device_hash, &why, now)?;
            Ok(login)
        })
    }

    /// Records the sign-in at the provider that will finish the device login under
    /// `user_code` (confirmed by the person), before the browser leaves for the provider.
    pub fn record_device_sign_in(
        &self,
        pending: &Pending,
        user_code: &str,
    ) -> Result<DeviceLogin, ServiceError> {
        let code = normalize_user_code(user_code).ok_or_else(over)?;
        let now = self.now().timestamp();
        self.store.write(|tx| {
            let login = device::waiting_by_user_code(tx, &code, now)?.ok_or_else(over)?;
            let row = LoginRow {
                nonce: pending.nonce.clone(),
                pkce_verifier: pending.pkce_verifier.clone(),
                cli_redirect: String::new(),
                cli_challenge: String::new(),
                device_hash: Some(login.device_hash.clone()),
                web_next: None,
                web_replaces: None,
            };
            let n = sessions::insert_login(tx, &pending.state, &row, now, now + SIGN_IN_SECONDS)?;
            if n > super::signin::MAX_LOGINS_IN_PROGRESS {
                sessions::evict_oldest_logins(tx, n - super::signin::MAX_LOGINS_IN_PROGRESS)?;
            }
            Ok(login)
        })
    }

    /// The provider vouched for `signed` in a sign-in for the device login
    /// `device_hash`: binds the person (the first time) and readies the session for the
    /// CLI's next poll. Who signed in, and the login.
    pub fn complete_device_login(
        &self,
        signed: &SignedIn,
        device_hash: &str,
    ) -> Result<(UserName, DeviceLogin), ServiceError> {
        let (config, now) = (self.config(), self.now());
        let oidc = oidc_of(&config)?;
        let groups = super::signin::groups_json(oidc, &signed.groups);
        self.store.write(|tx| {
            let Some(login) = device::waiting_by_hash(tx, device_hash, now.timestamp())? else {
                return Ok(Err(over()));
            };
            let user = match self.bind(tx, now, signed)? {
                Ok(user) => user,
                Err(e) => {
                    let why = format!("{}: {}", e.code(), e.public_message());
                    device::end(tx, device_hash, &Ending::Refused(&why), now.timestamp())?;
                    return Ok(Err(e));
                }
            };
            if disabled::is_disabled(tx, &user)? {
                let e = disabled_error(&user);
                let why = format!("{}: {}", e.code(), e.public_message());
                device::end(tx, device_hash, &Ending::Refused(&why), now.timestamp())?;
                return Ok(Err(e));
            }
            let sealed = self.sealed_refresh_token(signed, &user);
            let ending = Ending::SignedIn {
                user: &user,
                groups: &groups,
                auth_time: signed.auth_time.map(|t| t.timestamp()),
                refresh_token: sealed.as_deref(),
            };
            device::end(tx, device_hash, &ending, now.timestamp())?;
            Ok::<_, ServiceError>(Ok((user, login)))
        })?
    }

    /// A sign-in for the device login `device_hash` failed (at the provider, or its
    /// answer did not hold): its CLI hears `access_denied` with `why`.
    pub fn fail_device_login(&self, device_hash: &str, why: &str) -> Result<(), ServiceError> {
        let now = self.now().timestamp();
        self.store
            .write(|tx| device::end(tx, device_hash, &Ending::Refused(why), now))?;
        Ok(())
    }

    /// A poll by the CLI: the session once the person signed in (the device code is then
    /// spent), or why not yet.
    pub fn poll_device_login(
        &self,
        device_code: &str,
    ) -> Result<Result<NewSession, DeviceWait>, ServiceError> {
        let now = self.now();
        self.store.write(|tx| {
            let (user, groups, auth_time, refresh_token, vouched_at) =
                match device::poll(tx, device_code, now.timestamp(), SLOW_DOWN_SECONDS)? {
                    Poll::Unknown => return Ok(Err(DeviceWait::Unknown)),
                    Poll::Expired => return Ok(Err(DeviceWait::Expired)),
                    Poll::SlowDown => return Ok(Err(DeviceWait::SlowDown)),
                    Poll::Pending => return Ok(Err(DeviceWait::Pending)),
                    Poll::Denied(why) => return Ok(Err(DeviceWait::Denied(why))),
                    Poll::SignedIn {
                        user,
                        groups,
                        auth_time,
                        refresh_token,
                        vouched_at,
                    } => (user, groups, auth_time, refresh_token, vouched_at),
                };
            let person = SignedInPerson {
                user: &user,
                groups: &groups,
                auth_time,
                refresh_token: refresh_token.as_deref(),
                vouched_at,
                via: DEVICE_VIA,
            };
            match self.new_session(tx, now, &person)? {
                Ok(session) => Ok(Ok(session)),
                // Disabled since: the code is spent, nothing else written.
                Err(e) => Ok(Err(DeviceWait::Denied(format!(
                    "{}: {}",
                    e.code(),
                    e.public_message()
                )))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_read_as_people_type_them() {
        assert_eq!(normalize_user_code("bcdf-ghjk"), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code(" BCDF GHJK "), Some("BCDFGHJK".into()));
        assert_eq!(normalize_user_code("BCDF-GHJA"), None, "no vowels");
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(format_user_code("BCDFGHJK"), "BCDF-GHJK");
        let made = new_user_code();
        assert_eq!(normalize_user_code(&format_user_code(&made)), Some(made));
    }

    #[test]
    fn a_host_name_is_shown_only_in_safe_characters() {
        assert_eq!(clean_host("laptop-7.corp"), "laptop-7.corp");
        assert_eq!(clean_host("<script>x"), "scriptx");
        assert_eq!(clean_host(""), "(not given)");
        assert_eq!(clean_host(&"a".repeat(100)).len(), 64);
    }
}
