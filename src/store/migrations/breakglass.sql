-- Break-glass (`[roles.NAME.break_glass]`): each use is a request issued at once, with
-- its review here. The text is the same on both engines (BIGINT is an integer in SQLite).
-- `reviewers` and `reviews_required` are the role's table as it was at the use: the
-- review a use needs does not change when the policy does.
CREATE TABLE breakglass (
    request_id       TEXT PRIMARY KEY REFERENCES requests (id),
    invoker          TEXT NOT NULL,
    role             TEXT NOT NULL,
    ttl_asked        BIGINT,
    cut              BIGINT NOT NULL CHECK (cut IN (0, 1)),
    reviewers        TEXT NOT NULL,
    reviews_required BIGINT NOT NULL CHECK (reviews_required > 0),
    used_at          BIGINT NOT NULL,
    remind_at        BIGINT NOT NULL,
    review_due       BIGINT NOT NULL,
    allowed_by       TEXT,
    outcome          TEXT CHECK (outcome IN ('justified', 'unjustified')),
    closed_at        BIGINT,
    reminded_at      BIGINT,
    overdue_at       BIGINT
);
CREATE INDEX breakglass_open ON breakglass (invoker) WHERE closed_at IS NULL;
CREATE INDEX breakglass_by_due ON breakglass (review_due) WHERE closed_at IS NULL;
CREATE INDEX breakglass_by_use ON breakglass (used_at);
CREATE TABLE breakglass_verdicts (
    request_id TEXT NOT NULL REFERENCES breakglass (request_id),
    reviewer   TEXT NOT NULL,
    verdict    TEXT NOT NULL CHECK (verdict IN ('justified', 'unjustified')),
    comment    TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (request_id, reviewer)
);
-- One more use an admin allowed a user whose previous use waits for its review; the
-- next use spends it.
CREATE TABLE breakglass_allowances (
    "user"     TEXT PRIMARY KEY,
    granted_by TEXT NOT NULL,
    granted_at BIGINT NOT NULL
);
