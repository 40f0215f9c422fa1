//! [`Local`]: the state on the CA host as the operator commands use it (`token`,
//! `backup`, `audit verify` and `audit checkpoint`), opened without serving and without
//! creating anything (`state::open_existing`). The CLI reaches the database only
//! through this, as the server reaches it only through [`Service`](super::Service).

use std::path::Path;

use super::ServiceError;
use crate::audit::{self, AuditError, Verified};
use crate::ca::CertificateAuthority;
use crate::checkpoint::{self, Checkpoint, CheckpointError};
use crate::config::Config;
use crate::names::UserName;
use crate::policy::Policy;
use crate::store::{Store, StoreError, certificates, meta};

/// The local database, bound to its CA key, opened for one operator command.
pub struct Local {
    pub(super) store: Store,
}

impl Local {
    /// Opens the state `config` names as it is (after `init` or a first `serve`).
    pub fn open(config: &Config) -> Result<Local, ServiceError> {
        let (store, _) = crate::state::open_existing(config)?;
        Ok(Local { store })
    }

    /// Opens a copy made by [`Local::backup_to`], to check it.
    pub fn open_copy(path: &Path) -> Result<Local, ServiceError> {
        Ok(Local {
            store: Store::open_existing(path)?,
        })
    }

    /// A new token for `user` (see [`super::create_token`]): the secret and its end.
    pub fn create_token(
        &self,
        config: &Config,
        user: &UserName,
        operator: &str,
        spec: &super::TokenSpec,
    ) -> Result<(String, i64), ServiceError> {
        super::create_token(&self.store, config, user, operator, spec)
    }

    /// Every token (never the token itself).
    pub fn list_tokens(&self) -> Result<Vec<crate::store::tokens::TokenListing>, ServiceError> {
        Ok(self.store.read(crate::store::tokens::list)?)
    }

    /// Revokes every token of `user` (see [`super::revoke_tokens`]).
    pub fn revoke_tokens(
        &self,
        policy: &Policy,
        user: &UserName,
        operator: &str,
    ) -> Result<usize, ServiceError> {
        super::revoke_tokens(&self.store, policy, user, operator)
    }

    /// Every user name bound to a person of the identity provider.
    pub fn identities(&self) -> Result<Vec<super::IdentityBinding>, ServiceError> {
        super::list_identities(&self.store)
    }

    /// Unbinds `user` (see [`super::unbind_identity`]).
    pub fn unbind_identity(
        &self,
        user: &UserName,
        reason: &crate::names::Text,
        operator: &str,
    ) -> Result<(super::IdentityBinding, usize), ServiceError> {
        super::unbind_identity(&self.store, user, reason, operator)
    }

    /// Pending and dead notifications (see [`super::notify_status`]).
    pub fn notify_status(
        &self,
        limit: i64,
    ) -> Result<(i64, i64, Vec<crate::store::notify::Listed>), ServiceError> {
        super::notify_status(&self.store, limit)
    }

    /// Re-arms dead notifications (see [`super::notify_retry`]).
    pub fn notify_retry(
        &self,
        event_id: Option<&str>,
        sink: Option<&str>,
        operator: &str,
    ) -> Result<u64, ServiceError> {
        super::notify_retry(&self.store, event_id, sink, operator)
    }

    /// Recomputes the whole audit chain.
    pub fn verify_audit(&self) -> Result<Verified, AuditError> {
        audit::verify_store(&self.store)
    }

    /// A signed checkpoint of the log's head, stamped `time`.
    pub fn checkpoint(
        &self,
        ca: &CertificateAuthority,
        time: &str,
    ) -> Result<(Checkpoint, String), CheckpointError> {
        self.store.read(|tx| checkpoint::create(tx, ca, time))
    }

    /// Checks that the chain verifies and still holds the checkpointed head.
    pub fn check_checkpoint(&self, cp: &Checkpoint) -> Result<Verified, CheckpointError> {
        self.store.read(|tx| checkpoint::check_log(tx, cp))
    }

    /// Copies the whole database, one consistent snapshot, to the new file `dest`.
    pub fn backup_to(&self, dest: &Path) -> Result<(), StoreError> {
        self.store.backup_to(dest)
    }

    /// Whether the state is in PostgreSQL (backed up with its own tools, not `backup`).
    pub fn is_postgres(&self) -> bool {
        self.store.is_postgres()
    }

    /// The database's id and its KRL version.
    pub fn identity(&self) -> Result<(String, u64), StoreError> {
        self.store.read(|tx| {
            Ok::<_, StoreError>((meta::database_id(tx)?, certificates::krl_version(tx)?))
        })
    }
}
