-- Host certificates ([host_ca]): join tokens (stored as SHA-256, used once), every
-- certificate the host CA signed, and host revocations an accepted rollback carried over.
-- `revoked_seq` shares one sequence with `certificates.revoked_seq`: both KRLs carry the
-- one KRL version the high-water mark protects.
CREATE TABLE host_tokens (
    hash        TEXT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    principals  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER,
    used_serial INTEGER
);
CREATE TABLE host_certificates (
    id              INTEGER PRIMARY KEY,
    serial          INTEGER NOT NULL UNIQUE CHECK (serial > 0),
    key_fingerprint TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    principals      TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    valid_after     INTEGER NOT NULL,
    valid_before    INTEGER NOT NULL,
    certificate     TEXT NOT NULL,
    issued_at       INTEGER NOT NULL,
    token_id        TEXT,
    renewed_from    INTEGER,
    challenge       TEXT UNIQUE,
    revoked_at      INTEGER,
    revoked_by      TEXT,
    revoke_reason   TEXT,
    revoked_seq     INTEGER
);
CREATE INDEX host_certificates_by_key ON host_certificates (key_fingerprint, valid_before);
CREATE INDEX host_certificates_by_end ON host_certificates (valid_before);
CREATE INDEX host_certificates_by_renewed_from ON host_certificates (renewed_from)
    WHERE renewed_from IS NOT NULL;
CREATE INDEX host_certificates_revoked ON host_certificates (revoked_at, valid_before)
    WHERE revoked_at IS NOT NULL;
CREATE UNIQUE INDEX host_certificates_by_revoked_seq ON host_certificates (revoked_seq)
    WHERE revoked_seq IS NOT NULL;
CREATE TABLE carried_host_revocations (
    serial       INTEGER PRIMARY KEY CHECK (serial > 0),
    valid_before INTEGER NOT NULL,
    carried_at   INTEGER NOT NULL
);
-- The host CA's public key, recorded at its first use: a replica with another host CA
-- key is refused, as one with another user CA key is.
ALTER TABLE meta ADD COLUMN host_ca_key TEXT;
