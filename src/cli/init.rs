//! `countersign init` and `countersign check-config`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::ca::CertificateAuthority;
use crate::config::Config;
use crate::host_key;
use crate::policy::rules::describe_members;
use crate::service::Access;
use crate::service::Service;

/// `countersign init` options.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Encrypt a newly created CA key with the passphrase in `[ca] passphrase_file`
    /// (required with this flag; the passphrase is never taken from the command line).
    #[arg(long)]
    pub encrypt: bool,
    /// Create an empty database for an existing CA key that countersign made, whose
    /// database and state mark are both gone (every revocation it made is forgotten).
    #[arg(long)]
    pub new_database: bool,
}

/// Creates the data directory, database and CA key (never overwriting it), and the SSH
/// host key when `[ssh]` is set, and prints the CA public key line.
pub(super) fn init(config: &Path, args: &InitArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(config)?;
    if args.encrypt && config.ca.agent {
        bail!(
            "--encrypt: [ca] agent = true; the agent holds the key, there is no key file to encrypt"
        );
    }
    if args.encrypt && config.ca.passphrase_file.is_none() {
        bail!(
            "--encrypt needs [ca] passphrase_file: the file holding the passphrase \
             (e.g. \"${{CREDENTIALS_DIRECTORY}}/ca-passphrase\")"
        );
    }
    // Not beside a running server: both would keep the state mark.
    let _lock = crate::daemon::PidFile::lock(&config)?;
    let existed = config.ca.agent || config.ca.key_file.exists();
    let access = Access::Init {
        new_database: args.new_database,
    };
    let service = Service::open(config, access, &super::token::operator())?;
    let ca = service.ca();
    if service.config().ca.agent {
        eprintln!("CA key held by the SSH agent at SSH_AUTH_SOCK");
    } else if existed {
        eprintln!(
            "CA key {} already exists; left unchanged",
            service.config().ca.key_file.display()
        );
    } else {
        let how = if service.config().ca.passphrase_file.is_some() {
            "encrypted "
        } else {
            ""
        };
        eprintln!(
            "created {how}CA key {}",
            service.config().ca.key_file.display()
        );
    }
    eprintln!("CA fingerprint {}", ca.fingerprint());
    if let Some(ssh) = &service.config().ssh {
        let (key, created) = host_key::load_or_create(&ssh.host_key_file)?;
        if created {
            eprintln!("created SSH host key {}", ssh.host_key_file.display());
        }
        eprintln!("SSH host key fingerprint {}", host_key::fingerprint(&key));
    }
    if let Ok(line) = service.host_ca_public() {
        eprintln!("host CA public key (for @cert-authority lines): {line}");
    }
    outln!("{}", ca.public_key_line())?;
    Ok(ExitCode::SUCCESS)
}

/// `allowed_principals`, comma-separated, or `none`.
fn principals_summary(h: &crate::config::HostCaSettings) -> String {
    match h.allowed_principals.is_empty() {
        true => "none".to_owned(),
        false => h
            .allowed_principals
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Validates the config and prints a summary; warnings go to stderr.
pub(super) fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::load(path)?;
    let p = &config.policy;
    outln!("config       {}", config.path.display())?;
    outln!("listen       {}", config.server.listen)?;
    match &config.server.tls {
        Some(tls) => outln!(
            "tls          {} ({})",
            tls.cert.display(),
            tls.key.display()
        )?,
        None => outln!("tls          off (plain HTTP)")?,
    }
    outln!("data_dir     {}", config.server.data_dir.display())?;
    let where_ = if config.ca.agent {
        "in the SSH agent".to_owned()
    } else {
        config.ca.key_file.display().to_string()
    };
    match CertificateAuthority::open(&config.ca, false) {
        Ok((ca, _)) => outln!("ca key       {where_} ({})", ca.fingerprint())?,
        Err(e) if config.ca.agent || config.ca.key_file.exists() => {
            outln!("ca key       UNUSABLE: {e:#}")?
        }
        Err(_) => outln!("ca key       {where_} (not created yet: run init or serve)")?,
    }
    match &config.host_ca {
        Some(h) => match crate::ca::HostAuthority::public_key(h) {
            Ok(key) => outln!(
                "host ca      {} ({}); certificates {} (at most {}), principals {}",
                h.key_file.display(),
                key.fingerprint(ssh_key::HashAlg::Sha256),
                crate::render::config_duration(h.cert_ttl),
                crate::render::config_duration(h.max_ttl),
                principals_summary(h)
            )?,
            Err(_) if !h.key_file.exists() => outln!(
                "host ca      {} (not created yet: run init or serve)",
                h.key_file.display()
            )?,
            Err(e) => outln!("host ca      UNUSABLE: {e:#}")?,
        },
        None => outln!("host ca      off (no [host_ca] section)")?,
    }
    let storage_ok = storage_summary(&config)?;
    outln!("ssh          {}", ssh_summary(&config))?;
    match &config.metrics {
        Some(m) => outln!("metrics      http://{}/metrics", m.listen)?,
        None => outln!("metrics      off ([metrics] not set)")?,
    }
    let log = match config.server.log_format {
        crate::config::LogFormat::Text => "text",
        crate::config::LogFormat::Json => "json (one object per line)",
    };
    outln!("log format   {log}")?;
    let oidc_ok = oidc_summary(&config)?;
    let notify_ok = notify_summary(&config)?;
    outln!(
        "pending_ttl  {}",
        crate::render::config_duration(config.requests.pending_ttl)
    )?;
    outln!(
        "keys         {}",
        if config.requests.require_registered_keys {
            "only keys registered to the requester are certified (require_registered_keys)"
        } else {
            "a requester without registered keys may have any key nobody registered certified"
        }
    )?;
    outln!(
        "users        {} ({} admin)",
        p.users.len(),
        p.users.values().filter(|u| u.admin).count()
    )?;
    for role in p.roles.values() {
        let principals: Vec<&str> = role.principals.iter().map(|t| t.0.as_str()).collect();
        outln!(
            "role         {}: principals [{}], requesters {}, approvals {}, ttl {} (max {})",
            role.name,
            principals.join(", "),
            describe_members(&role.requesters),
            role.approval_rule(),
            crate::render::config_duration(role.default_ttl),
            crate::render::config_duration(role.max_ttl)
        )?;
        if let Some(bg) = &role.break_glass {
            outln!(
                "break-glass  {}: invokers {}, max {}, reviews {} of {} within {}",
                role.name,
                describe_members(&bg.invokers),
                crate::render::config_duration(bg.max_ttl),
                bg.reviews,
                describe_members(&bg.reviewers),
                crate::render::config_duration(bg.review_within)
            )?;
        }
    }
    for c in &p.conflicts {
        let roles: Vec<&str> = c.roles.iter().map(|r| r.as_str()).collect();
        outln!("conflict     {}: {}", roles.join(" <-> "), c.reason)?;
    }
    match &p.signing {
        Some(s) if !s.is_signed() => outln!(
            "policy       unsigned from version {} on ([policy] without signers: signing \
             retired)",
            s.version
        )?,
        Some(s) => outln!(
            "policy       signed: {} of {} (version {}); `countersign policy status` checks \
             the signatures",
            s.signatures_required,
            s.signers
                .iter()
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            s.version
        )?,
        None => outln!("policy       unsigned (no [policy] section)")?,
    }
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if !p.signing.as_ref().is_some_and(|s| s.is_signed()) {
        eprintln!(
            "warning: the policy is unsigned: whoever can edit this file decides who may \
             approve what ([policy] signers make a change need several people's signatures)"
        );
    }
    if !storage_ok {
        eprintln!("countersign: [storage] password_file cannot be used (see above)");
        return Ok(ExitCode::FAILURE);
    }
    if !oidc_ok {
        eprintln!("countersign: [oidc] client_secret_file cannot be used (see above)");
        return Ok(ExitCode::FAILURE);
    }
    if !notify_ok {
        eprintln!("countersign: a [[notify]] sink cannot be used (see above)");
        return Ok(ExitCode::FAILURE);
    }
    outln!("ok")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints where the state is kept; for PostgreSQL also checks the password file under
/// the rules `serve` applies (without connecting). Returns whether it can be used.
fn storage_summary(config: &Config) -> anyhow::Result<bool> {
    let pg = match &config.storage {
        crate::config::StorageSettings::Sqlite => {
            outln!("storage      sqlite ({})", config.database_path().display())?;
            return Ok(true);
        }
        crate::config::StorageSettings::Postgres(pg) => pg,
    };
    let tls = match &pg.tls {
        crate::config::PgTls::Disable => "no TLS (this machine)".to_owned(),
        crate::config::PgTls::VerifyFull { root_cert: None } => {
            "TLS verify-full, system roots".to_owned()
        }
        crate::config::PgTls::VerifyFull {
            root_cert: Some(path),
        } => format!("TLS verify-full, roots {}", path.display()),
    };
    outln!(
        "storage      postgres {} ({tls}, pool {})",
        pg.url,
        pg.pool_size
    )?;
    let Some(file) = &pg.password_file else {
        outln!("password     none (password_file not set)")?;
        return Ok(true);
    };
    let checked = file
        .resolve()
        .and_then(|path| crate::ca::read_secret_file(&path).map(|_| path));
    match checked {
        Ok(path) => {
            outln!("password     {} (ok)", path.display())?;
            Ok(true)
        }
        Err(e) => {
            outln!("password     UNUSABLE: {e}")?;
            Ok(false)
        }
    }
}

/// Prints the sign-in settings (what to register at the provider) and checks the client
/// secret file under the rules `serve` applies. Returns whether it can be used.
fn oidc_summary(config: &Config) -> anyhow::Result<bool> {
    let Some(o) = &config.oidc else {
        outln!("oidc         off (no [oidc] section)")?;
        return Ok(true);
    };
    let auth = match o.client_auth {
        crate::config::ClientAuth::Basic => "client_secret_basic",
        crate::config::ClientAuth::Post => "client_secret_post",
    };
    outln!(
        "oidc         issuer {}, client {} ({auth})",
        o.issuer,
        o.client_id
    )?;
    outln!(
        "redirect     {} (register it at the provider)",
        o.redirect_uri()
    )?;
    let refresh = if o.scopes.iter().any(|s| s == "offline_access") {
        "groups re-read every 50 minutes"
    } else {
        "no offline_access: provider groups count for an hour after each sign-in"
    };
    outln!("scopes       {} ({refresh})", o.scopes.join(" "))?;
    let map: Vec<String> = o
        .group_map
        .iter()
        .map(|m| {
            let groups: Vec<&str> = m.groups.iter().map(|g| g.as_str()).collect();
            format!("{} -> {}", m.claim, groups.join(", "))
        })
        .collect();
    outln!(
        "group_map    {}",
        if map.is_empty() {
            "none (the provider gives no groups)".to_owned()
        } else {
            map.join("; ")
        }
    )?;
    let checked = o
        .client_secret_file
        .resolve()
        .and_then(|path| crate::ca::read_secret_file(&path).map(|_| path));
    match checked {
        Ok(path) => {
            outln!("secret       {} (ok)", path.display())?;
            Ok(true)
        }
        Err(e) => {
            outln!("secret       UNUSABLE: {e}")?;
            Ok(false)
        }
    }
}

/// `127.0.0.1:2222, host key PATH (SHA256:...)`, or `off`.
fn ssh_summary(config: &Config) -> String {
    let Some(ssh) = &config.ssh else {
        return "off (no [ssh] section)".into();
    };
    let path = ssh.host_key_file.display();
    let key = match host_key::load(&ssh.host_key_file) {
        Ok(k) => format!("host key {path} ({})", host_key::fingerprint(&k)),
        Err(_) if !ssh.host_key_file.exists() => {
            format!("host key {path} (not created yet: run init or serve)")
        }
        Err(e) => format!("host key UNUSABLE: {e:#}"),
    };
    format!("{}, {key}", ssh.listen)
}

/// Prints each `[[notify]]` sink (never its URL or key), its files read as `serve`
/// reads them; whether all can be used.
fn notify_summary(config: &Config) -> anyhow::Result<bool> {
    let mut ok = true;
    if config.notify.is_empty() {
        outln!("notify       off (no [[notify]] sink)")?;
    }
    for sink in &config.notify {
        let events: Vec<&str> = sink.events.iter().map(|e| e.as_str()).collect();
        let roles = match &sink.roles {
            Some(r) => r
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None => "all roles".into(),
        };
        let state = match crate::notify::Sink::load(sink) {
            Ok(_) => "ok".to_owned(),
            Err(e) => {
                ok = false;
                format!("UNUSABLE: {}", e.message)
            }
        };
        outln!(
            "notify       {} ({}): {}; {roles}; gives up after {}: {state}",
            sink.name,
            sink.kind.as_str(),
            events.join(", "),
            crate::names::short_duration(sink.give_up_after)
        )?;
    }
    Ok(ok)
}
