//! The events of notifications (`[[notify]]`).

use serde::{Deserialize, Serialize};

/// `notify.dead`: a notification that could not be delivered gave up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyDead {
    /// The `[[notify]]` sink.
    pub sink: String,
    /// The event's id (`msg_...`), as the receiver would have seen it.
    pub event_id: String,
    /// The event (`request.created`, ...).
    pub event: String,
    /// How many times it was tried.
    pub attempts: i64,
    /// Why the last try failed (a status or an error kind; never the URL).
    pub error: String,
}

/// `notify.retried`: an operator re-armed dead notifications (`notify retry`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotifyRetried {
    /// The event's id; `*` when every dead delivery was re-armed (`notify retry --all`).
    pub event_id: String,
    /// The sink, when only one was re-armed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// How many deliveries were re-armed.
    pub deliveries: u64,
}
