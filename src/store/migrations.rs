//! Schema migrations, applied in order; `PRAGMA user_version` counts those applied.
//! Entries are never edited or removed: a change is a new entry at the end.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;
#[cfg(test)]
use {super::connect, std::path::Path};

/// The migrations, oldest first.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE requests (
    id              TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    requester       TEXT NOT NULL,
    reason          TEXT NOT NULL,
    ttl_seconds     INTEGER NOT NULL CHECK (ttl_seconds > 0),
    public_key      TEXT NOT NULL,
    key_fingerprint TEXT NOT NULL,
    principals      TEXT NOT NULL,
    role_digest     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                    ('pending','issued','denied','cancelled','expired','refused')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    decided_at      INTEGER,
    decided_by      TEXT,
    decision_code   TEXT,
    decision_note   TEXT
);
CREATE INDEX requests_by_requester ON requests (requester, status);
CREATE INDEX requests_by_status ON requests (status, expires_at);

CREATE TABLE approvals (
    request_id TEXT NOT NULL REFERENCES requests (id),
    approver   TEXT NOT NULL,
    at         INTEGER NOT NULL,
    comment    TEXT,
    PRIMARY KEY (request_id, approver)
);

CREATE TABLE certificates (
    serial       INTEGER PRIMARY KEY CHECK (serial > 0),
    request_id   TEXT NOT NULL UNIQUE REFERENCES requests (id),
    requester    TEXT NOT NULL,
    role         TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    valid_after  INTEGER NOT NULL,
    valid_before INTEGER NOT NULL,
    certificate  TEXT NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX certificates_by_requester ON certificates (requester, valid_before);

CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_user ON tokens (user);

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    request_id TEXT,
    serial     TEXT,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_by_request ON audit (request_id);
CREATE INDEX audit_by_serial ON audit (serial);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#,
    r#"
ALTER TABLE certificates ADD COLUMN revoked_by TEXT;
ALTER TABLE certificates ADD COLUMN revoke_reason TEXT;
ALTER TABLE certificates ADD COLUMN revoked_seq INTEGER;
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq);
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before);
"#,
    r#"
-- Serials are random: as the rowid they scattered every insert over the whole table.
-- Rows now append in issue order; serial is a unique secondary key.
CREATE TABLE certificates_v3 (
    id            INTEGER PRIMARY KEY,
    serial        INTEGER NOT NULL UNIQUE CHECK (serial > 0),
    request_id    TEXT NOT NULL UNIQUE REFERENCES requests (id),
    requester     TEXT NOT NULL,
    role          TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    valid_after   INTEGER NOT NULL,
    valid_before  INTEGER NOT NULL,
    certificate   TEXT NOT NULL,
    revoked_at    INTEGER,
    revoked_by    TEXT,
    revoke_reason TEXT,
    revoked_seq   INTEGER
);
INSERT INTO certificates_v3 (serial, request_id, requester, role, key_id, valid_after,
    valid_before, certificate, revoked_at, revoked_by, revoke_reason, revoked_seq)
    SELECT serial, request_id, requester, role, key_id, valid_after, valid_before,
    certificate, revoked_at, revoked_by, revoke_reason, revoked_seq
    FROM certificates ORDER BY rowid;
DROP TABLE certificates;
ALTER TABLE certificates_v3 RENAME TO certificates;
CREATE INDEX certificates_by_requester ON certificates (requester, valid_before);
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before);
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq);
"#,
    r#"
-- The SoD check asks "does this user hold one of these roles?": one probe per role,
-- instead of reading every active certificate of the user.
CREATE INDEX certificates_held ON certificates (requester, role, valid_before)
    WHERE revoked_at IS NULL;
"#,
    r#"
-- Fewer index pages per issued certificate. certificates_held (requester first) serves
-- every per-user query; the revocation indexes hold revoked rows only, and audit rows
-- without a serial stay out of audit_by_serial.
DROP INDEX certificates_by_requester;
DROP INDEX certificates_revoked;
CREATE INDEX certificates_revoked ON certificates (revoked_at, valid_before)
    WHERE revoked_at IS NOT NULL;
DROP INDEX certificates_by_revoked_seq;
CREATE UNIQUE INDEX certificates_by_revoked_seq ON certificates (revoked_seq)
    WHERE revoked_seq IS NOT NULL;
DROP INDEX audit_by_serial;
CREATE INDEX audit_by_serial ON audit (serial) WHERE serial IS NOT NULL;
"#,
    r#"
-- requests_by_requester put every request of a user in one random place of the index
-- (a random page per create and per decision); the SoD check needs pending ones only,
-- which this small index holds. Lists page by status and age straight from an index
-- instead of sorting the table; overdue pending requests come from the pending section.
DROP INDEX requests_by_requester;
CREATE INDEX requests_pending ON requests (requester, role) WHERE status = 'pending';
DROP INDEX requests_by_status;
CREATE INDEX requests_by_status ON requests (status, created_at DESC, id);
CREATE INDEX requests_by_age ON requests (created_at DESC, id);
"#,
    r#"
-- A non-admin's list (own requests, and those of the roles they may approve) reads each
-- source newest first from its own index, however large the table; only inserts touch
-- these (requester, role and created_at never change).
CREATE INDEX requests_by_requester ON requests (requester, created_at DESC, id);
CREATE INDEX requests_by_role ON requests (role, created_at DESC, id);
"#,
    r#"
-- The state binding (store/meta.rs): which database this is, which CA keys it belongs
-- to (with the periods they were in use, so that a later key rotation adds a row), and
-- the floor under the KRL version (raised when an operator accepts a rolled-back
-- database, so that the KRL version never goes back).
CREATE TABLE meta (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    database_id TEXT NOT NULL,
    krl_floor   INTEGER NOT NULL DEFAULT 0 CHECK (krl_floor >= 0),
    -- The policy last recorded as policy.loaded (canonical JSON), to tell what a start
    -- or a reload changed.
    policy      TEXT
);
INSERT INTO meta (id, database_id) VALUES (1, lower(hex(randomblob(16))));
CREATE TABLE ca_keys (
    fingerprint TEXT PRIMARY KEY,
    public_key  TEXT NOT NULL,
    since       INTEGER NOT NULL,
    until       INTEGER
);
CREATE UNIQUE INDEX ca_keys_current ON ca_keys (until IS NULL) WHERE until IS NULL;
-- Revocations an older copy of the database did not have when an operator accepted it
-- (serve --accept-rollback), carried over from the high-water mark (certificates the
-- copy has no row of, or has not revoked): listed in the KRL until their end.
CREATE TABLE carried_revocations (
    serial       INTEGER PRIMARY KEY CHECK (serial > 0),
    valid_before INTEGER NOT NULL,
    carried_at   INTEGER NOT NULL
);
"#,
    r#"
-- Offboarding disables a user (refused every credential until enabled again), and marks
-- their tokens revoked for good: kept, so that a revoked token is answered "disabled"
-- rather than "unknown", and never live again (enabling does not revive them).
CREATE TABLE disabled_users (
    user        TEXT PRIMARY KEY,
    disabled_at INTEGER NOT NULL,
    disabled_by TEXT NOT NULL,
    reason      TEXT NOT NULL
) WITHOUT ROWID;
ALTER TABLE tokens ADD COLUMN revoked_at INTEGER;
"#,
    r#"
-- Idempotency keys of POST /v1/requests (Idempotency-Key): per user, the request the key
-- created and a digest of what was asked, so that a retry gets the same request and a
-- different body under the same key is refused. Kept at least 24 hours.
CREATE TABLE idempotency_keys (
    user        TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
"#,
    r#"
-- Sign-in with the identity provider ([oidc]). A sign-in in progress, between the
-- browser leaving for the provider and coming back (by the hash of its `state`); a
-- one-time code the CLI trades for its session; who each person is at the provider
-- (issuer and subject, bound to one user name for good); and the sessions.
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    cli_redirect  TEXT NOT NULL,
    cli_challenge TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX oidc_logins_by_expiry ON oidc_logins (expires_at);
CREATE TABLE login_codes (
    code_hash     TEXT PRIMARY KEY,
    user          TEXT NOT NULL,
    groups        TEXT NOT NULL,
    auth_time     INTEGER,
    cli_challenge TEXT NOT NULL,
    expires_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE identities (
    issuer   TEXT NOT NULL,
    subject  TEXT NOT NULL,
    user     TEXT NOT NULL UNIQUE,
    bound_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user       TEXT NOT NULL,
    via        TEXT NOT NULL,
    groups     TEXT NOT NULL,
    auth_time  INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX sessions_by_user ON sessions (user);
"#,
    r#"
-- The device flow of `countersign login --device` (RFC 8628): countersign is the device
-- authorization server of its own CLI. A device login waits, by the hashes of its device
-- code and user code, until the person confirms it in a browser and signs in at the
-- provider, while the CLI polls; a sign-in in progress may be for one (`device_hash`).
CREATE TABLE device_logins (
    device_hash    TEXT PRIMARY KEY,
    user_code_hash TEXT NOT NULL UNIQUE,
    client_host    TEXT NOT NULL,
    client_address TEXT NOT NULL,
    step_up        INTEGER NOT NULL,
    interval_secs  INTEGER NOT NULL,
    polled_at      INTEGER,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    status         TEXT NOT NULL,
    user           TEXT,
    groups         TEXT,
    auth_time      INTEGER,
    error          TEXT
) WITHOUT ROWID;
CREATE INDEX device_logins_by_expiry ON device_logins (expires_at);
ALTER TABLE oidc_logins ADD COLUMN device_hash TEXT;
"#,
    r#"
-- Re-reading groups between sign-ins: a session keeps the refresh token the provider
-- gave (sealed with a key derived from the client secret, bound to its user), when the
-- provider last vouched for the person (`checked_at`), and until when its groups count
-- (`groups_until`: an hour after sign-in when there is no refresh token to re-read
-- them). The sign-in's code and device login carry the sealed token to the session.
ALTER TABLE login_codes ADD COLUMN refresh_token TEXT;
ALTER TABLE device_logins ADD COLUMN refresh_token TEXT;
ALTER TABLE sessions ADD COLUMN refresh_token TEXT;
ALTER TABLE sessions ADD COLUMN checked_at INTEGER;
ALTER TABLE sessions ADD COLUMN groups_until INTEGER;
"#,
    r#"
-- When the provider vouched for the person (the sign-in's callback, or a re-check): a
-- session's groups are those of its own last vouch (`checked_at`), and a person's are
-- those of the freshest vouch among their live sessions, so an older answer never
-- overwrites a newer one. When a session is next due for a re-check (`next_check_at`),
-- apart from when the provider last answered.
ALTER TABLE login_codes ADD COLUMN vouched_at INTEGER;
ALTER TABLE device_logins ADD COLUMN vouched_at INTEGER;
ALTER TABLE sessions ADD COLUMN next_check_at INTEGER;
"#,
    r#"
-- API tokens: an expiry for every token (NULL for those made before: they live
-- [tokens] max_ttl from their creation), their kind (`human`, or `bot` for a service
-- account, which never approves), a bot's scopes (comma-separated) and when a token was
-- last used (to the minute).
ALTER TABLE tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'human';
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN last_used_at INTEGER;
"#,
    r#"
-- SSH public keys registered by their owners after proving possession (`countersign
-- keys add`): bound to that person like the config's `ssh_keys`. One owner per key (the
-- SHA-256 fingerprint of its blob). A challenge to prove possession is kept only as its
-- SHA-256 hash, for minutes, and used once.
CREATE TABLE registered_keys (
    fingerprint   TEXT PRIMARY KEY,
    user          TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE INDEX registered_keys_by_user ON registered_keys (user);
CREATE TABLE key_challenges (
    hash        TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX key_challenges_by_user ON key_challenges (user);
"#,
    r#"
-- The notification outbox: one row per event and sink ([[notify]]), written in the
-- transaction of the change it tells of; the dispatcher claims due rows with a lease
-- (`lease_until`) and a token of its own (`claim`), delivers, and marks them delivered,
-- due again later, or dead, only while the claim is still its own.
CREATE TABLE notify_outbox (
    event_id    TEXT NOT NULL,
    sink        TEXT NOT NULL,
    event       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL CHECK (status IN ('pending','delivered','dead')),
    lease_until INTEGER,
    claim       TEXT,
    last_error  TEXT,
    done_at     INTEGER,
    PRIMARY KEY (event_id, sink)
);
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_at);
"#,
    r#"
-- A sign-in from the web UI: where the browser goes once signed in (a path on this
-- server); the CLI's fields are then empty.
ALTER TABLE oidc_logins ADD COLUMN web_next TEXT;
"#,
    r#"
-- A sign-in from the web UI: the hash of the session it replaces (the browser's before,
-- ended when the new one is made).
ALTER TABLE oidc_logins ADD COLUMN web_replaces TEXT;
"#,
    r#"
-- Readiness proves the database takes a write by counting here (`GET /v1/ready`): a
-- change, so that SQLite really writes (an UPDATE to the same value writes nothing).
ALTER TABLE meta ADD COLUMN ready_probe BIGINT NOT NULL DEFAULT 0;
"#,
    // Host certificates; the text is in its own file to keep this one short.
    include_str!("migrations/host_certificates.sql"),
    // Break-glass uses, their reviews and allowances (the same text on PostgreSQL).
    include_str!("migrations/breakglass.sql"),
    // The host events of the audit log, for `audit verify` (the same text on PostgreSQL).
    include_str!("migrations/audit_hosts.sql"),
    // The same index, tested by the action's prefix (the same text on PostgreSQL).
    include_str!("migrations/audit_hosts_prefix.sql"),
    // `requests.status` checked by comparisons instead of `IN` (SQLite only).
    include_str!("migrations/requests_status_check.sql"),
    r#"
-- The distinct approvals a request's role needed when it was made: its view keeps
-- saying so after the role changes (NULL for requests made before, and break-glass).
ALTER TABLE requests ADD COLUMN approvals_required INTEGER;
"#,
    // The recorded policy's digest (on PostgreSQL, checked by every write).
    include_str!("migrations/policy_digest.sql"),
];

/// Applies the migrations not applied yet. A database already current is only read:
/// opening it (for `audit verify`, `token create`, ...) takes no write lock, so it works
/// while another process holds one or the disk is full.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let schema_version = |c: &Connection| -> Result<usize, StoreError> {
        let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Corrupt(format!(
                "database schema version {version} is newer than this countersign ({})",
                MIGRATIONS.len()
            )));
        }
        Ok(version)
    };
    if schema_version(conn)? == MIGRATIONS.len() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    // Read again under the lock: another process may have migrated meanwhile.
    let version = schema_version(&tx)?;
    for sql in &MIGRATIONS[version..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

/// A database created at schema `version` (the first `version` migrations only), as an
/// older countersign left it, holding the rows `seed` (SQL) inserts: for tests of
/// upgrades.
#[cfg(test)]
pub(crate) fn create_at_schema(path: &Path, version: usize, seed: &str) -> Result<(), StoreError> {
    let conn = connect(path)?;
    for sql in &MIGRATIONS[..version] {
        conn.execute_batch(sql)?;
    }
    conn.pragma_update(None, "user_version", version as i64)?;
    conn.execute_batch(seed)?;
    Ok(())
}
