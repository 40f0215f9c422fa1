//! One session channel seen as a program's stdout, stderr and exit status.
//!
//! Everything goes through the russh session's [`Handle`], in order: the data, then
//! `exit-status`, EOF and close, so the OpenSSH client prints all output before it exits
//! with the status.

use russh::ChannelId;
use russh::server::Handle;

/// The client is gone: nothing more can be written to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client disconnected")]
pub(super) struct Disconnected;

/// SSH extended-data type of stderr (RFC 4254 section 5.2).
const STDERR: u32 = 1;

/// The output side of one running command.
#[derive(Clone)]
pub(super) struct Terminal {
    handle: Handle,
    channel: ChannelId,
}

impl Terminal {
    /// Output to `channel` of the session behind `handle`.
    pub(super) fn new(handle: Handle, channel: ChannelId) -> Self {
        Terminal { handle, channel }
    }

    /// Writes `text` to the client's stdout.
    pub(super) async fn out(&self, text: impl Into<String>) -> Result<(), Disconnected> {
        let bytes = text.into().into_bytes();
        self.handle
            .data(self.channel, bytes)
            .await
            .map_err(|_| Disconnected)
    }

    /// Writes `text` to the client's stderr.
    pub(super) async fn err(&self, text: impl Into<String>) -> Result<(), Disconnected> {
        let bytes = text.into().into_bytes();
        self.handle
            .extended_data(self.channel, STDERR, bytes)
            .await
            .map_err(|_| Disconnected)
    }

    /// Sends an empty stderr packet: traffic that keeps the idle timeout from closing a
    /// connection whose command is busy waiting, and that fails once the client is gone.
    pub(super) async fn heartbeat(&self) -> Result<(), Disconnected> {
        self.err(String::new()).await
    }

    /// Ends the command: exit status, EOF, close. A client already gone is no error.
    pub(super) async fn exit(&self, status: u32) {
        let _ = self.handle.exit_status_request(self.channel, status).await;
        let _ = self.handle.eof(self.channel).await;
        let _ = self.handle.close(self.channel).await;
    }
}
