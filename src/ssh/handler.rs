//! The russh handler of one connection: public-key authentication, session channels,
//! and one command per channel run on its own task.
//!
//! Only `publickey` is offered; password and keyboard-interactive attempts, certificates,
//! unregistered keys, disabled users' keys and wrong login names are refused, logged and
//! counted against the source address. At most `max_channels_per_connection` session
//! channels are open at once; more are refused (resource shortage). A shell request
//! prints the help. PTYs, environment variables, X11, agent and port forwarding, and
//! subsystems are all refused.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use russh::keys::{Certificate, PublicKey};
use russh::server::{
    Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::auth::{self, AuthRefusal, Identity};
use super::context::Context;
use super::limits::{ConnectionsPerAddress, FailureLimiter, OpenChannels, SessionCounter};
use super::run;
use super::terminal::Terminal;
use crate::config::SshSettings;
use crate::service::Service;

/// What every connection shares: the service, the settings and the counters.
pub(super) struct Shared {
    /// The operations.
    pub service: Arc<Service>,
    /// `[ssh]`.
    pub settings: SshSettings,
    /// Refused authentications per source address.
    pub failures: FailureLimiter,
    /// Open connections per source address.
    pub per_address: Arc<ConnectionsPerAddress>,
    /// Running commands per user.
    pub sessions: Arc<SessionCounter>,
}

impl Shared {
    /// Fresh counters for `settings`.
    pub(super) fn new(service: Arc<Service>, settings: SshSettings) -> Self {
        Shared {
            failures: FailureLimiter::new(settings.auth_failures_per_minute),
            per_address: ConnectionsPerAddress::new(settings.max_connections_per_address),
            sessions: SessionCounter::new(settings.max_sessions_per_user),
            service,
            settings,
        }
    }
}

/// One client connection.
pub(super) struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// When `request` must stop waiting: shortly before the connection's time limit.
    wait_until: Instant,
    identity: Option<Identity>,
    /// Whether this connection is counted as a failed authentication: once, however many
    /// keys it offers, and forgiven when it authenticates after all (an agent with several
    /// keys offers them in turn).
    failure_counted: bool,
    /// Set once authentication succeeded: the listener closes connections that have not
    /// by `auth_timeout`.
    authenticated: Arc<AtomicBool>,
    /// The session channels open on this connection.
    channels: Arc<OpenChannels>,
    tasks: HashMap<ChannelId, AbortHandle>,
}

impl Connection {
    /// A connection from `peer`, accepted at `accepted`; `authenticated` is set once the
    /// client has logged in.
    pub(super) fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        accepted: Instant,
        authenticated: Arc<AtomicBool>,
    ) -> Self {
        let limit = shared.settings.connection_timeout;
        let margin = (limit / 2).min(Duration::from_secs(1));
        let wait_until = accepted + limit - margin;
        let channels = OpenChannels::new(shared.settings.max_channels_per_connection);
        Connection {
            shared,
            peer,
            wait_until,
            identity: None,
            failure_counted: false,
            authenticated,
            channels,
            tasks: HashMap::new(),
        }
    }

    /// The identity `login` + `key` stand for, unless the address is rate limited (a
    /// connection already counted may finish its few attempts: its own failure must not
    /// lock out the good key it offers next).
    fn check(&self, login: &str, key: &PublicKey) -> Result<Identity, AuthRefusal> {
        let now = std::time::Instant::now();
        if !self.failure_counted && self.shared.failures.is_blocked(self.peer.ip(), now) {
            return Err(AuthRefusal::RateLimited);
        }
        // Point reads on a pooled reader, as the HTTP API's token lookup.
        let service = &self.shared.service;
        let identity = auth::authorize(login, key.key_data(), |k| service.key_owner(k))?;
        let check = self.shared.service.check_enabled(&identity.user);
        auth::enabled(identity, check)
    }

    /// Logs a refused attempt, and counts the connection as failed (once).
    fn refuse(&mut self, login: &str, why: &AuthRefusal) -> Auth {
        // Neither the limit itself nor our own storage failing is the client's failure.
        let theirs = !matches!(
            why,
            AuthRefusal::RateLimited
                | AuthRefusal::Unchecked { .. }
                | AuthRefusal::OwnerUnread { .. }
        );
        if theirs && !self.failure_counted {
            self.failure_counted = true;
            self.shared
                .failures
                .record_failure(self.peer.ip(), std::time::Instant::now());
        }
        tracing::warn!(
            peer = %self.peer,
            login = ?auth::printable(login),
            reason = %why,
            "ssh authentication refused"
        );
        self.shared
            .service
            .metrics()
            .ssh_refused(why.metric_reason());
        Auth::reject()
    }

    /// Runs a command (`Some(line)`) or the shell's help (`None`) on `channel`.
    fn start(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
        line: Option<Vec<u8>>,
    ) -> Result<(), russh::Error> {
        let Some(identity) = self.identity.clone() else {
            return session.channel_failure(channel);
        };
        // One command per channel; a channel whose command ended is closing.
        if self.tasks.contains_key(&channel) || !self.channels.is_open(channel) {
            return session.channel_failure(channel);
        }
        session.channel_success(channel)?;
        let term = Terminal::new(session.handle(), channel);
        let release = self.channels.release_on_drop(channel);
        let slot = self.shared.sessions.try_acquire(&identity.user);
        let max = self.shared.sessions.max();
        let ctx = Context {
            service: self.shared.service.clone(),
            identity,
            wait_until: self.wait_until,
            recheck: (self.shared.settings.idle_timeout / 2)
                .clamp(Duration::from_millis(500), Duration::from_secs(5)),
        };
        let task = tokio::spawn(async move {
            let status = match (slot, line) {
                (None, _) => run::too_many_sessions(&term, max).await,
                (Some(_slot), None) => run::shell(&term).await,
                (Some(_slot), Some(line)) => run::run(&ctx, &term, &line).await,
            };
            // The channel's place is free before the client learns that it is closed, so
            // that its next open never finds the place still taken.
            drop(release);
            term.exit(status).await;
        });
        self.tasks.insert(channel, task.abort_handle());
        Ok(())
    }
}

impl Drop for Connection {
    /// The client is gone: stop its commands (a waiting request stays pending).
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        Ok(self.refuse(user, &AuthRefusal::NotPublicKey))
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.refuse(user, &AuthRefusal::NotPublicKey))
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.check(user, offer.public_key) {
            Ok(_) => Auth::Accept,
            Err(why) => self.refuse(user, &why),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.check(user, key.public_key) {
            Ok(identity) => {
                if std::mem::take(&mut self.failure_counted) {
                    self.shared.failures.forgive(self.peer.ip());
                }
                tracing::info!(
                    peer = %self.peer,
                    user = %identity.user,
                    key = %identity.key.fingerprint(),
                    "ssh login"
                );
                self.identity = Some(identity);
                Ok(Auth::Accept)
            }
            Err(why) => Ok(self.refuse(user, &why)),
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.authenticated.store(true, Ordering::Release);
        Ok(())
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        _certificate: &Certificate,
    ) -> Result<Auth, Self::Error> {
        Ok(self.refuse(user, &AuthRefusal::Certificate))
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Output goes through the session handle; the channel's own message stream (the
        // client's stdin) is not read, and russh drops what nobody receives.
        let id = channel.id();
        drop(channel);
        // Commands that ended are gone from the task list (their channels are closed).
        self.tasks.retain(|_, task| !task.is_finished());
        if self.channels.try_open(id) {
            reply.accept().await;
        } else {
            tracing::warn!(
                peer = %self.peer,
                max = self.channels.max(),
                "ssh channel refused: max_channels_per_connection reached"
            );
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session, None)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, session, Some(data.to_vec()))
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(task) = self.tasks.remove(&channel) {
            task.abort();
        }
        self.channels.close(channel);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}
