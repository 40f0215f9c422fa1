//! `countersign token create|revoke USER` (on the CA host).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::names::UserName;
use crate::service::{Local, Scope, TokenSpec};

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for USER and print it once, alone on stdout.
    Create {
        /// A user from the config.
        user: String,
        /// A service account's token (a bot): only its --scope, never approving.
        #[arg(long)]
        bot: bool,
        /// How long it lives (e.g. 30d) [default: [tokens] default_ttl].
        #[arg(long)]
        ttl: Option<String>,
        /// A bot's scopes: request, fetch, read-audit, host-token (comma-separated or
        /// repeated).
        #[arg(long, value_delimiter = ',')]
        scope: Vec<String>,
    },
    /// Every token: user, kind, scopes, created, expires, last used (never the token).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every token of USER.
    Revoke {
        /// A user name.
        user: String,
    },
}

/// The actor recorded for operator commands run on the CA host.
pub(super) fn operator() -> String {
    let name = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_default();
    match UserName::parse(&name) {
        Ok(n) => format!("operator:{n}"),
        Err(_) => "operator".to_owned(),
    }
}

/// A time as RFC 3339, or `-`.
fn at(t: Option<i64>) -> String {
    t.map_or_else(|| "-".to_owned(), crate::service::rfc3339)
}

/// Runs a token subcommand.
pub(super) fn run(config: &Path, cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    let local = Local::open(&config)?;
    match cmd {
        TokenCommand::Create {
            user,
            bot,
            ttl,
            scope,
        } => {
            let user = UserName::parse(&user)?;
            if !bot && !scope.is_empty() {
                anyhow::bail!("--scope is for a service account's token: add --bot");
            }
            let ttl = ttl
                .map(|t| crate::names::parse_duration(&t, "--ttl"))
                .transpose()?;
            let bot_scopes = if bot {
                let mut scopes = std::collections::BTreeSet::new();
                for s in &scope {
                    let parsed = Scope::parse(s.trim()).ok_or_else(|| {
                        anyhow::anyhow!(
                            "--scope {s:?}: must be request, fetch, read-audit or host-token \
                             (no scope approves)"
                        )
                    })?;
                    scopes.insert(parsed);
                }
                Some(scopes)
            } else {
                None
            };
            if bot_scopes
                .as_ref()
                .is_some_and(|s| s.contains(&Scope::ReadAudit) || s.contains(&Scope::HostToken))
                && !config.policy.is_admin(&user)
                && !config.policy.users.get(&user).is_some_and(|u| u.bot)
            {
                eprintln!(
                    "warning: {user} is neither an admin nor a service account (bot = true): \
                     the read-audit and host-token scopes let its token do nothing"
                );
            }
            let service_account = config.policy.users.get(&user).is_some_and(|u| u.bot);
            if bot && !service_account && config.oidc.as_ref().is_some_and(|o| !o.human_tokens) {
                eprintln!(
                    "warning: {user} is no service account (bot = true): with [oidc] \
                     human_tokens = false this token is refused like any person's"
                );
            }
            let spec = TokenSpec { ttl, bot_scopes };
            let (secret, expires_at) = local.create_token(&config, &user, &operator(), &spec)?;
            outln!("{secret}")?;
            eprintln!(
                "{} token for {user} created, expires {}; it is shown only this once",
                if bot { "bot" } else { "a" },
                at(Some(expires_at))
            );
        }
        TokenCommand::List { json } => {
            let all = local.list_tokens()?;
            let now = chrono::Utc::now().timestamp();
            let expired = |t: &crate::service::TokenListing| {
                crate::service::token_end(t.expires_at, t.created_at, config.tokens.max_ttl) <= now
            };
            let status = |t: &crate::service::TokenListing| match (t.revoked_at, expired(t)) {
                (Some(_), _) => "revoked",
                (None, true) => "expired",
                (None, false) => "live",
            };
            let json_at = |t: Option<i64>| t.map(|t| at(Some(t)));
            if json {
                let list: Vec<_> = all
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "user": t.user, "kind": t.kind,
                            "scopes": t.scopes, "created_at": at(Some(t.created_at)),
                            "expires_at": json_at(t.expires_at),
                            "last_used_at": json_at(t.last_used_at),
                            "revoked": t.revoked_at.is_some(), "status": status(t),
                        })
                    })
                    .collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "tokens": list }))?
                )?;
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.user.to_string(),
                            t.kind.clone(),
                            t.scopes.clone().unwrap_or_else(|| "-".into()),
                            at(Some(t.created_at)),
                            at(t.expires_at),
                            at(t.last_used_at),
                            status(t).into(),
                        ]
                    })
                    .collect();
                let headers = [
                    "ID",
                    "USER",
                    "KIND",
                    "SCOPES",
                    "CREATED",
                    "EXPIRES",
                    "LAST USED",
                    "STATUS",
                ];
                out!("{}", crate::render::render_table(&headers, &rows))?;
            }
        }
        TokenCommand::Revoke { user } => {
            let user = UserName::parse(&user)?;
            let n = local.revoke_tokens(&config.policy, &user, &operator())?;
            eprintln!("revoked {n} token(s) of {user}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
