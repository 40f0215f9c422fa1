//! Re-checking a person with the provider between sign-ins: their refresh token brings
//! their current groups, or the provider's `invalid_grant` says it no longer vouches for
//! them (deprovisioned, or their grant revoked).

use chrono::{DateTime, Utc};
use openidconnect::core::CoreErrorResponseType;
use openidconnect::{Nonce, OAuth2TokenResponse, RefreshToken, TokenResponse};
use serde_json::Value;

use super::{OidcError, Provider, chain, http, list_claim};

/// What a re-check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rechecked {
    /// The person's groups at the provider now.
    pub groups: Vec<String>,
    /// A new refresh token, if the provider rotated it.
    pub refresh_token: Option<String>,
}

/// Why a re-check brought no groups.
#[derive(Debug, thiserror::Error)]
pub enum RecheckError {
    /// The provider no longer honours the refresh token (`invalid_grant`), or answered
    /// for another person: it does not vouch for this person any more.
    #[error("the identity provider no longer vouches for this person: {0}")]
    Gone(String),
    /// The provider could not be asked, or its answer did not hold: try again later.
    #[error(transparent)]
    Failed(#[from] OidcError),
}

impl Provider {
    /// Asks the provider about `subject` again with their `refresh_token`, at `now`.
    pub async fn recheck(
        &self,
        refresh_token: &str,
        subject: &str,
        now: DateTime<Utc>,
    ) -> Result<Rechecked, RecheckError> {
        let client = self.client(self.metadata(false).await?)?;
        let http = http::client(&self.http);
        let token = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_owned()))
            .map_err(|e| OidcError::Refused(format!("the provider has no token endpoint: {e}")))?
            .request_async(&http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r)
                    if *r.error() == CoreErrorResponseType::InvalidGrant =>
                {
                    RecheckError::Gone(format!("the provider answered {r}"))
                }
                openidconnect::RequestTokenError::ServerResponse(r) => RecheckError::Failed(
                    OidcError::Refused(format!("the provider refused the refresh: {r}")),
                ),
                other => RecheckError::Failed(OidcError::Unavailable(format!(
                    "the refresh failed: {}",
                    chain(&other)
                ))),
            })?;
        let mut groups = None;
        if let Some(id_token) = token.id_token() {
            // A refreshed ID token carries no nonce of ours (OpenID Connect Core 12.2);
            // everything else is checked as at sign-in.
            let any_nonce = |_: Option<&Nonce>| Ok(());
            let verified = id_token
                .claims(&self.verifier(&client, now), any_nonce)
                .cloned();
            let claims = match verified {
                Ok(claims) => claims,
                Err(_) => {
                    let client = self.client(self.metadata(true).await?)?;
                    id_token
                        .claims(&self.verifier(&client, now), any_nonce)
                        .map_err(|e| OidcError::Refused(format!("the refreshed ID token: {e}")))?
                        .clone()
                }
            };
            self.check_azp(&claims)?;
            if claims.subject().as_str() != subject {
                return Err(RecheckError::Gone(
                    "the refreshed ID token is about another subject".into(),
                ));
            }
            let payload = http::jwt_payload(&id_token.to_string())
                .ok_or_else(|| OidcError::Refused("the ID token's payload is not JSON".into()))?;
            if payload.get(&self.settings.groups_claim).is_some() {
                groups = Some(list_claim(&payload, &self.settings.groups_claim));
            }
        }
        if groups.is_none()
            && !self.settings.group_map.is_empty()
            && let Some(info) = self
                .userinfo(&client, token.access_token().secret())
                .await?
        {
            if info.get("sub").and_then(Value::as_str) != Some(subject) {
                return Err(RecheckError::Gone(
                    "userinfo is about another subject".into(),
                ));
            }
            groups = Some(list_claim(&info, &self.settings.groups_claim));
        }
        Ok(Rechecked {
            groups: groups.unwrap_or_default(),
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
        })
    }
}
