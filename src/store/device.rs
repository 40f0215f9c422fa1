//! Device logins (`countersign login --device`, RFC 8628): a CLI without a browser waits
//! while its person confirms the login in a browser anywhere and signs in at the
//! provider. The device code (the CLI's) and the user code (the person's) are stored only
//! as SHA-256 hashes.

use super::sessions::user_from;
use super::tokens::hash;
use super::{StoreError, Tx};
use crate::names::UserName;

/// How long a device login stays on the books after its end, so that a late poll hears
/// `expired_token` rather than that it never existed.
const KEPT_AFTER_END: i64 = 600;

/// A device login as the person confirming it sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceLogin {
    /// The hash of its device code (what a sign-in for it carries).
    pub device_hash: String,
    /// The host name the CLI gave (its own word: shown, never trusted).
    pub client_host: String,
    /// The address the CLI's request came from, as the server saw it.
    pub client_address: String,
    /// Whether the provider must authenticate the person again.
    pub step_up: bool,
    /// When it was asked for (Unix seconds).
    pub created_at: i64,
}

/// A new device login: who asked, from where.
#[derive(Debug, Clone)]
pub struct NewDeviceLogin<'a> {
    /// The CLI's device code (stored hashed).
    pub device_code: &'a str,
    /// The person's user code, normalized (stored hashed).
    pub user_code: &'a str,
    /// The host name the CLI gave.
    pub client_host: &'a str,
    /// The address it came from.
    pub client_address: &'a str,
    /// Whether to authenticate the person again.
    pub step_up: bool,
    /// Seconds between polls, at least.
    pub interval: i64,
}

/// Stores a device login until `expires_at`, forgetting those long over; returns how
/// many are waiting, this one included.
pub fn insert(
    tx: &Tx<'_>,
    login: &NewDeviceLogin<'_>,
    now: i64,
    expires_at: i64,
) -> Result<i64, StoreError> {
    tx.exec(
        "DELETE FROM device_logins WHERE expires_at <= ?1",
        &[&(now - KEPT_AFTER_END)],
    )?;
    tx.exec(
        "INSERT INTO device_logins (device_hash, user_code_hash, client_host, client_address, \
         step_up, interval_secs, created_at, expires_at, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
        &[
            &hash(login.device_code),
            &hash(login.user_code),
            &login.client_host,
            &login.client_address,
            &i64::from(login.step_up),
            &login.interval,
            &now,
            &expires_at,
        ],
    )?;
    tx.one(
        "SELECT count(*) FROM device_logins WHERE expires_at > ?1",
        &[&now],
        |r| r.get(0),
    )
}

/// Forgets the `n` oldest device logins still waiting for a person.
pub fn evict_oldest(tx: &Tx<'_>, n: i64) -> Result<(), StoreError> {
    tx.exec(
        "DELETE FROM device_logins WHERE device_hash IN (SELECT device_hash FROM device_logins \
         WHERE status = 'pending' ORDER BY created_at, device_hash LIMIT ?1)",
        &[&n],
    )?;
    Ok(())
}

/// Whether a user code is taken by a device login still on the books.
pub fn user_code_taken(tx: &Tx<'_>, user_code: &str) -> Result<bool, StoreError> {
    tx.one(
        "SELECT EXISTS (SELECT 1 FROM device_logins WHERE user_code_hash = ?1)",
        &[&hash(user_code)],
        |r| r.get(0),
    )
}

/// The device login waiting for a person under `user_code` at `now`, if any.
pub fn waiting_by_user_code(
    tx: &Tx<'_>,
    user_code: &str,
    now: i64,
) -> Result<Option<DeviceLogin>, StoreError> {
    waiting(tx, "user_code_hash", &hash(user_code), now)
}

/// The device login of `device_hash` if it still waits for a person at `now`.
pub fn waiting_by_hash(
    tx: &Tx<'_>,
    device_hash: &str,
    now: i64,
) -> Result<Option<DeviceLogin>, StoreError> {
    waiting(tx, "device_hash", device_hash, now)
}

fn waiting(
    tx: &Tx<'_>,
    column: &str,
    key: &str,
    now: i64,
) -> Result<Option<DeviceLogin>, StoreError> {
    let sql = format!(
        "SELECT device_hash, client_host, client_address, step_up, created_at \
         FROM device_logins WHERE {column} = ?1 AND status = 'pending' AND expires_at > ?2"
    );
    tx.opt(&sql, &[&key, &now], |r| {
        Ok(DeviceLogin {
            device_hash: r.get(0)?,
            client_host: r.get(1)?,
            client_address: r.get(2)?,
            step_up: r.get::<i64>(3)? != 0,
            created_at: r.get(4)?,
        })
    })
}

/// How a device login ended at the browser.
#[derive(Debug, Clone)]
pub enum Ending<'a> {
    /// The person signed in: who, their groups (JSON list), their `auth_time`.
    SignedIn {
        /// Who.
        user: &'a UserName,
        /// Their countersign groups from the provider (JSON list).
        groups: &'a str,
        /// When they authenticated at the provider, if it said.
        auth_time: Option<i64>,
        /// The provider's refresh token, sealed, if it gave one.
        refresh_token: Option<&'a str>,
    },
    /// The person refused it, or the sign-in failed: why, for the CLI.
    Refused(&'a str),
}

/// Ends the device login of `device_hash` if it still waits at `now`; false if it did
/// not (over, ended already, unknown).
pub fn end(
    tx: &Tx<'_>,
    device_hash: &str,
    ending: &Ending<'_>,
    now: i64,
) -> Result<bool, StoreError> {
    let n = match ending {
        Ending::SignedIn {
            user,
            groups,
            auth_time,
            refresh_token,
        } => tx.exec(
            "UPDATE device_logins SET status = 'approved', \"user\" = ?2, groups = ?3, \
             auth_time = ?4, refresh_token = ?6, vouched_at = ?5 \
             WHERE device_hash = ?1 AND status = 'pending' AND expires_at > ?5",
            &[
                &device_hash,
                &user.as_str(),
                groups,
                auth_time,
                &now,
                refresh_token,
            ],
        )?,
        Ending::Refused(why) => tx.exec(
            "UPDATE device_logins SET status = 'denied', error = ?2 \
             WHERE device_hash = ?1 AND status = 'pending' AND expires_at > ?3",
            &[&device_hash, why, &now],
        )?,
    };
    Ok(n == 1)
}

/// What a poll by the CLI finds (RFC 8628, 3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// No such device code (never made, or already traded): `invalid_grant`.
    Unknown,
    /// Over: `expired_token`.
    Expired,
    /// Polled sooner than the interval: `slow_down` (the interval is now longer).
    SlowDown,
    /// Still waiting for the person: `authorization_pending`.
    Pending,
    /// The person refused, or the sign-in failed (why): `access_denied`.
    Denied(String),
    /// Signed in: who, their groups (JSON list), their `auth_time`. The device code is
    /// spent.
    SignedIn {
        /// Who.
        user: UserName,
        /// Their countersign groups (JSON list).
        groups: String,
        /// When they authenticated at the provider.
        auth_time: Option<i64>,
        /// The provider's refresh token, sealed, if it gave one.
        refresh_token: Option<String>,
        /// When the provider vouched for them (Unix seconds).
        vouched_at: i64,
    },
}

/// A poll with `device_code` at `now`: records it (a poll sooner than the interval
/// lengthens the interval by `slow_down` seconds) and says what the CLI hears. A
/// finished login is spent by the poll that hears it.
pub fn poll(tx: &Tx<'_>, device_code: &str, now: i64, slow_down: i64) -> Result<Poll, StoreError> {
    let key = hash(device_code);
    struct Stored {
        status: String,
        interval: i64,
        polled_at: Option<i64>,
        expires_at: i64,
        user: Option<String>,
        groups: Option<String>,
        auth_time: Option<i64>,
        error: Option<String>,
        refresh_token: Option<String>,
        vouched_at: Option<i64>,
    }
    let row = tx.opt(
        "SELECT status, interval_secs, polled_at, expires_at, \"user\", groups, auth_time, \
         error, refresh_token, vouched_at FROM device_logins WHERE device_hash = ?1",
        &[&key],
        |r| {
            Ok(Stored {
                status: r.get(0)?,
                interval: r.get(1)?,
                polled_at: r.get(2)?,
                expires_at: r.get(3)?,
                user: r.get(4)?,
                groups: r.get(5)?,
                auth_time: r.get(6)?,
                error: r.get(7)?,
                refresh_token: r.get(8)?,
                vouched_at: r.get(9)?,
            })
        },
    )?;
    let Some(Stored {
        status,
        interval,
        polled_at,
        expires_at,
        user,
        groups,
        auth_time,
        error,
        refresh_token,
        vouched_at,
    }) = row
    else {
        return Ok(Poll::Unknown);
    };
    if expires_at <= now {
        tx.exec("DELETE FROM device_logins WHERE device_hash = ?1", &[&key])?;
        return Ok(Poll::Expired);
    }
    match status.as_str() {
        "approved" => {
            tx.exec("DELETE FROM device_logins WHERE device_hash = ?1", &[&key])?;
            let (Some(user), Some(groups)) = (user, groups) else {
                return Err(StoreError::Corrupt(
                    "a device login approved for nobody".into(),
                ));
            };
            Ok(Poll::SignedIn {
                user: user_from(user)?,
                groups,
                auth_time,
                refresh_token,
                vouched_at: vouched_at.unwrap_or(now),
            })
        }
        "denied" => {
            tx.exec("DELETE FROM device_logins WHERE device_hash = ?1", &[&key])?;
            Ok(Poll::Denied(error.unwrap_or_default()))
        }
        _ if polled_at.is_some_and(|at| now - at < interval) => {
            tx.exec(
                "UPDATE device_logins SET interval_secs = interval_secs + ?2, polled_at = ?3 \
                 WHERE device_hash = ?1",
                &[&key, &slow_down, &now],
            )?;
            Ok(Poll::SlowDown)
        }
        _ => {
            tx.exec(
                "UPDATE device_logins SET polled_at = ?2 WHERE device_hash = ?1",
                &[&key, &now],
            )?;
            Ok(Poll::Pending)
        }
    }
}
