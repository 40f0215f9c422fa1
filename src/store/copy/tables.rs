//! Every table `migrate-store` copies, with its columns.

/// One table to copy: its columns (as both engines name them) and the order rows are
/// read and inserted in (parents before children, oldest first).
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) columns: &'static [(&'static str, Kind)],
    pub(super) order: &'static str,
}

/// How one column is read and written.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Int,
    Text,
}

use Kind::{Int, Text};

/// Every table, in an order that satisfies the foreign keys. `meta` is copied apart (its
/// one row exists already).
pub(super) const TABLES: &[Table] = &[
    Table {
        name: "requests",
        columns: &[
            ("id", Text),
            ("role", Text),
            ("requester", Text),
            ("reason", Text),
            ("ttl_seconds", Int),
            ("public_key", Text),
            ("key_fingerprint", Text),
            ("principals", Text),
            ("role_digest", Text),
            ("status", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("decided_at", Int),
            ("decided_by", Text),
            ("decision_code", Text),
            ("decision_note", Text),
            ("approvals_required", Int),
        ],
        order: "rowid",
    },
    Table {
        name: "approvals",
        columns: &[
            ("request_id", Text),
            ("approver", Text),
            ("at", Int),
            ("comment", Text),
        ],
        // The order they were given in: PostgreSQL numbers them in insert order.
        order: "rowid",
    },
    Table {
        name: "certificates",
        columns: &[
            ("id", Int),
            ("serial", Int),
            ("request_id", Text),
            ("requester", Text),
            ("role", Text),
            ("key_id", Text),
            ("valid_after", Int),
            ("valid_before", Int),
            ("certificate", Text),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
            ("revoked_seq", Int),
        ],
        order: "id",
    },
    Table {
        name: "carried_revocations",
        columns: &[("serial", Int), ("valid_before", Int), ("carried_at", Int)],
        order: "serial",
    },
    Table {
        name: "breakglass",
        columns: &[
            ("request_id", Text),
            ("invoker", Text),
            ("role", Text),
            ("ttl_asked", Int),
            ("cut", Int),
            ("reviewers", Text),
            ("reviews_required", Int),
            ("used_at", Int),
            ("remind_at", Int),
            ("review_due", Int),
            ("allowed_by", Text),
            ("outcome", Text),
            ("closed_at", Int),
            ("reminded_at", Int),
            ("overdue_at", Int),
        ],
        order: "used_at, request_id",
    },
    Table {
        name: "breakglass_verdicts",
        columns: &[
            ("request_id", Text),
            ("reviewer", Text),
            ("verdict", Text),
            ("comment", Text),
            ("at", Int),
        ],
        order: "request_id, at, reviewer",
    },
    Table {
        name: "breakglass_allowances",
        columns: &[
            ("\"user\"", Text),
            ("granted_by", Text),
            ("granted_at", Int),
        ],
        order: "\"user\"",
    },
    Table {
        name: "host_tokens",
        columns: &[
            ("hash", Text),
            ("id", Text),
            ("principals", Text),
            ("created_by", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("used_serial", Int),
        ],
        order: "created_at, hash",
    },
    Table {
        name: "host_certificates",
        columns: &[
            ("id", Int),
            ("serial", Int),
            ("key_fingerprint", Text),
            ("public_key", Text),
            ("principals", Text),
            ("key_id", Text),
            ("valid_after", Int),
            ("valid_before", Int),
            ("certificate", Text),
            ("issued_at", Int),
            ("token_id", Text),
            ("renewed_from", Int),
            ("challenge", Text),
            ("revoked_at", Int),
            ("revoked_by", Text),
            ("revoke_reason", Text),
            ("revoked_seq", Int),
        ],
        order: "id",
    },
    Table {
        name: "carried_host_revocations",
        columns: &[("serial", Int), ("valid_before", Int), ("carried_at", Int)],
        order: "serial",
    },
    Table {
        name: "tokens",
        columns: &[
            ("hash", Text),
            ("\"user\"", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("expires_at", Int),
            ("kind", Text),
            ("scopes", Text),
            ("last_used_at", Int),
        ],
        order: "rowid",
    },
    Table {
        name: "disabled_users",
        columns: &[
            ("\"user\"", Text),
            ("disabled_at", Int),
            ("disabled_by", Text),
            ("reason", Text),
        ],
        order: "\"user\"",
    },
    Table {
        name: "idempotency_keys",
        columns: &[
            ("\"user\"", Text),
            ("key", Text),
            ("fingerprint", Text),
            ("request_id", Text),
            ("created_at", Int),
        ],
        order: "\"user\", key",
    },
    // Who each person is at the identity provider, and their sessions. (A sign-in in
    // progress and its one-time code live for minutes: not copied; nor does a challenge to
    // prove a key.)
    Table {
        name: "identities",
        columns: &[
            ("issuer", Text),
            ("subject", Text),
            ("\"user\"", Text),
            ("bound_at", Int),
        ],
        order: "issuer, subject",
    },
    Table {
        name: "sessions",
        columns: &[
            ("id", Text),
            ("token_hash", Text),
            ("\"user\"", Text),
            ("via", Text),
            ("groups", Text),
            ("auth_time", Int),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
            ("refresh_token", Text),
            ("checked_at", Int),
            ("groups_until", Int),
            ("next_check_at", Int),
        ],
        order: "created_at, id",
    },
    Table {
        name: "registered_keys",
        columns: &[
            ("fingerprint", Text),
            ("\"user\"", Text),
            ("public_key", Text),
            ("registered_at", Int),
        ],
        order: "registered_at, fingerprint",
    },
    // Deliveries not yet made are acknowledged work: copied with the rest.
    Table {
        name: "notify_outbox",
        columns: &[
            ("event_id", Text),
            ("sink", Text),
            ("event", Text),
            ("payload", Text),
            ("created_at", Int),
            ("next_at", Int),
            ("attempts", Int),
            ("status", Text),
            ("lease_until", Int),
            ("claim", Text),
            ("last_error", Text),
            ("done_at", Int),
        ],
        order: "created_at, event_id, sink",
    },
    Table {
        name: "ca_keys",
        columns: &[
            ("fingerprint", Text),
            ("public_key", Text),
            ("since", Int),
            ("until", Int),
        ],
        order: "since, fingerprint",
    },
    Table {
        name: "audit",
        columns: &[
            ("seq", Int),
            ("at", Text),
            ("actor", Text),
            ("action", Text),
            ("request_id", Text),
            ("serial", Text),
            ("detail", Text),
            ("prev_hash", Text),
            ("hash", Text),
        ],
        order: "seq",
    },
];
