//! Sign-in with the company's identity provider: countersign as an OpenID Connect
//! client (authorization code with PKCE S256, `state` and `nonce`), using the
//! `openidconnect` crate for discovery, the code exchange and the ID token's checks.
//!
//! What this module adds to the crate's checks: the ID token's `azp` (OpenID Connect
//! Core 3.1.3.7, which the crate leaves to its users), a bound on `iat`, a fresh look at
//! the provider's keys when a token is signed with one it did not list before (key
//! rotation), the claims countersign is configured to read (the user name, the groups)
//! from the verified token or from userinfo, and errors that say whether the provider
//! refused or could not be reached.

mod http;
mod pkce;
mod refresh;
mod seal;

pub use pkce::{Pending, random_token, s256};
pub use refresh::{RecheckError, Rechecked};
pub use seal::SealKey;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;

use crate::config::{ClientAuth, OidcSettings};
use crate::error_code::chain;

/// How long discovery (endpoints and keys) is trusted before it is fetched again.
const DISCOVERY_LIFETIME: Duration = Duration::from_secs(3600);
/// After discovery failed, how long sign-ins fail at once instead of each waiting for
/// the provider (a provider that is down must not tie up the API's request slots).
const FAILED_DISCOVERY_HOLD: Duration = Duration::from_secs(30);
/// The soonest discovery is fetched again for an unknown signing key.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// How far in the future an ID token's `iat` may be (clock differences).
const IAT_FUTURE: chrono::TimeDelta = chrono::TimeDelta::seconds(120);
/// How old an ID token may be when it is exchanged (it was issued for this sign-in).
const IAT_PAST: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Why a sign-in did not complete.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense: try again later.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused, or what it sent does not hold: the sign-in fails.
    #[error("the sign-in was refused: {0}")]
    Refused(String),
}

/// A person the provider vouched for, from a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The issuer (`iss`).
    pub issuer: String,
    /// The subject (`sub`): with the issuer, who the person is.
    pub subject: String,
    /// The value of the configured user name claim, unchecked.
    pub username: Option<String>,
    /// The values of the configured groups claim.
    pub groups: Vec<String>,
    /// When the person last authenticated at the provider (`auth_time`), if said.
    pub auth_time: Option<DateTime<Utc>>,
    /// A refresh token, if the provider gave one (to re-read the groups later).
    pub refresh_token: Option<String>,
}

/// The provider, as configured in `[oidc]`, and what discovery said of it.
pub struct Provider {
    settings: OidcSettings,
    secret: ClientSecret,
    seal: SealKey,
    http: reqwest::Client,
    discovered: Mutex<Option<(CoreProviderMetadata, Instant)>>,
    /// When discovery was last fetched again for an unknown signing key.
    refreshed: Mutex<Option<Instant>>,
    /// When discovery last failed (cleared when it works).
    failed: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// The provider of `settings`, with the client secret read from its file. Nothing is
    /// fetched until the first sign-in: a provider that is down does not stop the CA.
    pub fn new(settings: OidcSettings, secret: String) -> Result<Self, OidcError> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer point countersign at
            // anything (SSRF); the endpoints come from discovery.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Unavailable(format!("no HTTP client: {e}")))?;
        Ok(Provider {
            settings,
            seal: SealKey::from_secret(&secret),
            secret: ClientSecret::new(secret),
            http,
            discovered: Mutex::new(None),
            refreshed: Mutex::new(None),
            failed: Mutex::new(None),
        })
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The key refresh tokens are sealed with at rest.
    pub fn seal_key(&self) -> &SealKey {
        &self.seal
    }

    fn cached(&self) -> Option<(CoreProviderMetadata, Instant)> {
        self.discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Discovery: from the cache while fresh; fetched again when old or `refresh` (then
    /// at most every few seconds, so a stream of bad tokens cannot make countersign
    /// hammer the provider).
    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        let refresh = refresh && {
            let mut last = self
                .refreshed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let allowed = last.is_none_or(|at| at.elapsed() >= REFRESH_AT_MOST_EVERY);
            if allowed {
                *last = Some(Instant::now());
            }
            allowed
        };
        if let Some((md, at)) = self.cached()
            && at.elapsed() < DISCOVERY_LIFETIME
            && !refresh
        {
            return Ok(md);
        }
        let failed = |at: &Mutex<Option<Instant>>| {
            *at.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if failed(&self.failed).is_some_and(|at| at.elapsed() < FAILED_DISCOVERY_HOLD) {
            return Err(OidcError::Unavailable(format!(
                "discovery failed less than {} s ago",
                FAILED_DISCOVERY_HOLD.as_secs()
            )));
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| OidcError::Refused(format!("the issuer is not a URL: {e}")))?;
        let client = http::client(&self.http);
        let md = CoreProviderMetadata::discover_async(issuer, &client)
            .await
            .map_err(|e| {
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
                OidcError::Unavailable(format!("discovery failed: {}", chain(&e)))
            })?;
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        *self
            .discovered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((md.clone(), Instant::now()));
        Ok(md)
    }

    fn client(&self, md: CoreProviderMetadata) -> Result<CoreClientSet, OidcError> {
        let redirect = RedirectUrl::new(self.settings.redirect_uri())
            .map_err(|e| OidcError::Refused(format!("public_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            md,
            ClientId::new(self.settings.client_id.clone()),
            Some(self.secret.clone()),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(match self.settings.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Post => AuthType::RequestBody,
        }))
    }

    /// Where to send the browser to sign in, for `pending`. With `max_age`, the
    /// provider must authenticate the person again unless they did within it (step-up:
    /// `prompt=login` too, for providers that ignore `max_age`).
    pub async fn authorize_url(
        &self,
        pending: &Pending,
        max_age: Option<Duration>,
    ) -> Result<String, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let (state, nonce) = (pending.state.clone(), pending.nonce.clone());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            pending.pkce_verifier.clone(),
        ));
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(age) = max_age {
            request = request.set_max_age(age).add_prompt(CoreAuthPrompt::Login);
        }
        // A refresh token (to re-read groups) is asked for with consent, as OpenID
        // Connect Core 11 says.
        if self.settings.scopes.iter().any(|s| s == "offline_access") {
            request = request.add_prompt(CoreAuthPrompt::Consent);
        }
        let (url, _, _) = request.url();
        Ok(url.to_string())
    }

    /// Finishes a sign-in: exchanges `code` (with `pending`'s PKCE verifier), verifies
    /// the ID token (signature by the provider's keys, `iss`, `aud`, `azp`, `exp`, `iat`
    /// and `nonce`, at `now`), and reads who it names.
    pub async fn finish(
        &self,
        code: &str,
        pending: &Pending,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, OidcError> {
        let client = self.client(self.metadata(false).await?)?;
        let http = http::client(&self.http);
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Refused(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => {
                    OidcError::Refused(format!("the provider refused the code: {r}"))
                }
                other => {
                    OidcError::Unavailable(format!("the code exchange failed: {}", chain(&other)))
                }
            })?;
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::Refused("the provider sent no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verified = {
            let verifier = self.verifier(&client, now);
            match id_token.claims(&verifier, &nonce) {
                Ok(claims) => Ok(claims.clone()),
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(e)) => Err(e),
                Err(e) => return Err(OidcError::Refused(format!("the ID token: {e}"))),
            }
        };
        let claims = match verified {
            Ok(claims) => claims,
            Err(first) => {
                // Perhaps signed with a key published since discovery (rotation): look
                // again, once, and believe only the provider's own answer.
                let client = self.client(self.metadata(true).await?)?;
                let verifier = self.verifier(&client, now);
                id_token
                    .claims(&verifier, &nonce)
                    .map_err(|e| {
                        OidcError::Refused(format!("the ID token: {e} (before: {first})"))
                    })?
                    .clone()
            }
        };
        self.check_azp(&claims)?;
        let payload = http::jwt_payload(&id_token.to_string())
            .ok_or_else(|| OidcError::Refused("the ID token's payload is not JSON".into()))?;
        let mut signed_in = SignedIn {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            username: string_claim(&payload, &self.settings.username_claim),
            groups: list_claim(&payload, &self.settings.groups_claim),
            auth_time: claims.auth_time(),
            refresh_token: token.refresh_token().map(|t| t.secret().clone()),
        };
        let wants_groups = !self.settings.group_map.is_empty();
        if signed_in.username.is_none()
            || (wants_groups && payload.get(&self.settings.groups_claim).is_none())
        {
            // Some providers put claims only in userinfo.
            if let Some(info) = self
                .userinfo(&client, token.access_token().secret())
                .await?
            {
                if info.get("sub").and_then(Value::as_str) != Some(signed_in.subject.as_str()) {
                    return Err(OidcError::Refused(
                        "userinfo is about another subject".into(),
                    ));
                }
                if signed_in.username.is_none() {
                    signed_in.username = string_claim(&info, &self.settings.username_claim);
                }
                if payload.get(&self.settings.groups_claim).is_none() {
                    signed_in.groups = list_claim(&info, &self.settings.groups_claim);
                }
            }
        }
        Ok(signed_in)
    }

    /// `azp`: when present it must be us; when the token is for several audiences it must
    /// be present (the crate already refuses audiences it was not told to trust).
    fn check_azp(&self, claims: &openidconnect::core::CoreIdTokenClaims) -> Result<(), OidcError> {
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.settings.client_id => {
                Err(OidcError::Refused(format!(
                    "the ID token was issued to another client ({})",
                    azp.as_str()
                )))
            }
            None if claims.audiences().len() > 1 => Err(OidcError::Refused(
                "the ID token has several audiences and no azp".into(),
            )),
            _ => Ok(()),
        }
    }

    fn verifier<'a>(
        &'a self,
        client: &'a CoreClientSet,
        now: DateTime<Utc>,
    ) -> openidconnect::core::CoreIdTokenVerifier<'a> {
        client
            .id_token_verifier()
            // Signatures by the provider's published keys only: never an HMAC keyed with
            // the client secret, whatever discovery advertises.
            .set_allowed_algs([
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
                CoreJwsSigningAlgorithm::RsaSsaPssSha256,
                CoreJwsSigningAlgorithm::RsaSsaPssSha384,
                CoreJwsSigningAlgorithm::RsaSsaPssSha512,
                CoreJwsSigningAlgorithm::EcdsaP256Sha256,
                CoreJwsSigningAlgorithm::EcdsaP384Sha384,
                CoreJwsSigningAlgorithm::EdDsa,
            ])
            .set_time_fn(move || now)
            .set_issue_time_verifier_fn(move |iat| {
                if iat > now + IAT_FUTURE {
                    Err(format!("it was issued in the future ({iat})"))
                } else if iat < now - IAT_PAST {
                    Err(format!("it was issued too long ago ({iat})"))
                } else {
                    Ok(())
                }
            })
    }

    /// The userinfo claims, if the provider has the endpoint.
    async fn userinfo(
        &self,
        client: &CoreClientSet,
        access_token: &str,
    ) -> Result<Option<Value>, OidcError> {
        let Some(url) = client.user_info_url() else {
            return Ok(None);
        };
        http::get_json(&self.http, url.as_str(), access_token)
            .await
            .map(Some)
    }
}

/// The client type `Provider::client` makes.
type CoreClientSet = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// A claim that is a string.
fn string_claim(claims: &Value, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A claim that is a list of strings (or one string); anything else gives nothing.
fn list_claim(claims: &Value, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}
