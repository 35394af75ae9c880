//! Who may query what: the `[api]` authentication settings, and a verified token's role and
//! row scope. Roles come from a configurable claim: `auditor` and `admin` see every row,
//! `tenant_auditor` the rows of the tenants in the tenant claim (jurisdictional separation),
//! `team_lead` the rows of the teams in the team claim, `finance` no rows through SQL (the
//! chargeback and ROI aggregates are theirs).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::Scope;
use crate::jwks_fetch::JwksUrl;
use crate::jwt::{Claims, Expectations, LocalKey};

/// Where the local token key lives: `<data_dir>/keys/api-token.pk8` (mode 0600).
pub fn local_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("api-token.pk8")
}

/// The local token key of `data_dir`, created (mode 0600) on first use.
pub fn local_key(data_dir: &Path) -> Result<LocalKey, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = local_key_path(data_dir);
    match std::fs::read(&path) {
        Ok(der) => {
            return LocalKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", path.display()));
        }
        Err(_) => {}
    }
    let der = LocalKey::generate_pkcs8().map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // create_new: two processes starting at once must not each write a different key.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&der).and_then(|()| f.sync_all()));
    match written {
        Ok(()) => LocalKey::from_pkcs8(&der).map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let der = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            LocalKey::from_pkcs8(&der).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The issuer of tokens minted with the local key (`calltrail token`).
pub const LOCAL_ISSUER: &str = "calltrail-local";
/// The audience of the query API's tokens by default.
pub const DEFAULT_AUDIENCE: &str = "calltrail-api";

/// `[api.auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The JWKS (RFC 7517 JSON) of the identity provider, read once at start-up. Without it or
    /// `jwks_url`, tokens minted by `calltrail token` with the local key
    /// (`<data_dir>/keys/api-token.pk8`) are trusted. At most one of the two.
    pub jwks_file: Option<PathBuf>,
    /// The URL of the identity provider's JWKS (its `jwks_uri`): https, or http to a loopback
    /// host only. Fetched at start-up (`serve` does not start if that fails), again every
    /// `jwks_refresh_secs`, and on demand (at most every 30 s) when a token names a key id the
    /// set lacks, so a key rotated in at the IdP works at once. A failed fetch keeps the last
    /// good keys. Each fetch: 10 s at most, 1 MiB of body at most, no redirects, no proxy.
    pub jwks_url: Option<String>,
    /// Seconds between background fetches of `jwks_url`, 30 to 86400. Default 300.
    pub jwks_refresh_secs: u64,
    /// The CA certificates (PEM) an https `jwks_url` must chain to. Default: the system's CA
    /// bundle (`/etc/ssl/certs/ca-certificates.crt` and the other usual places).
    pub jwks_ca_file: Option<PathBuf>,
    /// Required `iss`. Default `calltrail-local` (the local key's).
    pub issuer: String,
    /// Required member of `aud`. Default `calltrail-api`.
    pub audience: String,
    /// The claim holding the roles (a string or a list). Default `roles`.
    pub role_claim: String,
    /// The claim listing a team lead's teams. Default `teams`.
    pub team_claim: String,
    /// The claim listing a tenant auditor's tenants. Default `tenants`.
    pub tenant_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`, seconds. Default 60.
    pub leeway_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            jwks_refresh_secs: 300,
            jwks_ca_file: None,
            issuer: LOCAL_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
            role_claim: "roles".into(),
            team_claim: "teams".into(),
            tenant_claim: "tenants".into(),
            leeway_secs: 60,
        }
    }
}

impl AuthConfig {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("api.auth.issuer", &self.issuer),
            ("api.auth.audience", &self.audience),
            ("api.auth.role_claim", &self.role_claim),
            ("api.auth.team_claim", &self.team_claim),
            ("api.auth.tenant_claim", &self.tenant_claim),
        ] {
            if v.trim().is_empty() {
                return Err(format!("{key}: must not be empty"));
            }
        }
        if self.leeway_secs > 600 {
            return Err("api.auth.leeway_secs: must be at most 600".into());
        }
        if self.jwks_file.is_some() && self.jwks_url.is_some() {
            return Err("api.auth.jwks_file, api.auth.jwks_url: set one of them, not both".into());
        }
        if !(30..=86_400).contains(&self.jwks_refresh_secs) {
            return Err("api.auth.jwks_refresh_secs: must be between 30 and 86400".into());
        }
        let https = match &self.jwks_url {
            Some(url) => JwksUrl::parse(url)
                .map_err(|e| format!("api.auth.jwks_url: {e}"))?
                .is_https(),
            None => false,
        };
        if self.jwks_ca_file.is_some() && !https {
            return Err("api.auth.jwks_ca_file: only used with an https api.auth.jwks_url".into());
        }
        Ok(())
    }

    /// Whether tokens come from an identity provider (a JWKS file or URL) rather than the local
    /// key of `calltrail token`.
    pub fn uses_identity_provider(&self) -> bool {
        self.jwks_file.is_some() || self.jwks_url.is_some()
    }

    /// What tokens must say besides their signature.
    pub fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway_secs,
        }
    }
}

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Chargeback and ROI aggregates only.
    Finance,
    /// Their teams' rows.
    TeamLead,
    /// Their tenants' rows.
    TenantAuditor,
    /// Every row.
    Auditor,
    /// Every row, and administration.
    Admin,
}

impl Role {
    /// The role's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finance => "finance",
            Self::TeamLead => "team_lead",
            Self::TenantAuditor => "tenant_auditor",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Finance,
            Self::TeamLead,
            Self::TenantAuditor,
            Self::Auditor,
            Self::Admin,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// Who is asking, and what they may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// The broadest role the token holds.
    pub role: Role,
    /// The rows that role may read through SQL; `None` for no SQL at all.
    pub scope: Option<Scope>,
}

fn strings(claims: &Claims, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The caller a verified token describes; `None` when it holds no known role.
pub fn caller(claims: &Claims, config: &AuthConfig) -> Option<Caller> {
    let role = strings(claims, &config.role_claim)
        .iter()
        .filter_map(|r| Role::parse(r))
        .max()?;
    let scope = match role {
        Role::Admin | Role::Auditor => Some(Scope::All),
        Role::TenantAuditor => Some(Scope::Tenants(strings(claims, &config.tenant_claim))),
        Role::TeamLead => Some(Scope::Teams(strings(claims, &config.team_claim))),
        Role::Finance => None,
    };
    Some(Caller {
        subject: claims
            .get("sub")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
        role,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> Claims {
        serde_json::from_value(v).unwrap()
    }

    fn check(f: impl FnOnce(&mut AuthConfig)) -> Result<(), String> {
        let mut c = AuthConfig::default();
        f(&mut c);
        c.validate()
    }

    #[test]
    fn jwks_settings_are_checked_and_errors_name_the_key() {
        let url = |u: &str| Some(u.to_owned());
        assert!(check(|_| {}).is_ok());
        assert!(!AuthConfig::default().uses_identity_provider());
        assert!(check(|c| c.jwks_url = url("https://idp.example/.well-known/jwks.json")).is_ok());
        assert!(check(|c| c.jwks_url = url("http://127.0.0.1:8080/jwks")).is_ok());
        assert!(
            check(|c| {
                c.jwks_url = url("https://idp.example/jwks");
                c.jwks_ca_file = Some("ca.pem".into());
            })
            .is_ok()
        );
        let errors = [
            (
                check(|c| {
                    c.jwks_file = Some("jwks.json".into());
                    c.jwks_url = url("https://idp.example/jwks");
                }),
                "api.auth.jwks_file, api.auth.jwks_url: set one",
            ),
            (
                check(|c| c.jwks_url = url("http://idp.example/jwks")),
                "api.auth.jwks_url: plain http is only allowed to a loopback host",
            ),
            (
                check(|c| c.jwks_url = url("idp.example/jwks")),
                "api.auth.jwks_url: ",
            ),
            (
                check(|c| c.jwks_refresh_secs = 5),
                "api.auth.jwks_refresh_secs: ",
            ),
            (
                check(|c| c.jwks_refresh_secs = 100_000),
                "api.auth.jwks_refresh_secs: ",
            ),
            (
                check(|c| c.jwks_ca_file = Some("ca.pem".into())),
                "api.auth.jwks_ca_file: ",
            ),
            (
                check(|c| {
                    c.jwks_url = url("http://localhost/jwks");
                    c.jwks_ca_file = Some("ca.pem".into());
                }),
                "api.auth.jwks_ca_file: ",
            ),
        ];
        for (result, key) in errors {
            let e = result.unwrap_err();
            assert!(e.starts_with(key), "{e}");
        }
        let c: AuthConfig = serde_json::from_value(serde_json::json!({
            "jwks_url": "https://idp.example/jwks",
            "jwks_refresh_secs": 600,
            "issuer": "https://idp.example",
        }))
        .unwrap();
        assert!(c.uses_identity_provider());
        assert_eq!(c.jwks_refresh_secs, 600);
    }

    #[test]
    fn the_broadest_role_decides_the_scope() {
        let c = AuthConfig::default();
        let lead = caller(
            &claims(serde_json::json!({"sub": "a", "roles": ["team_lead"], "teams": ["payments", "crm"]})),
            &c,
        )
        .unwrap();
        assert_eq!(lead.role, Role::TeamLead);
        assert_eq!(
            lead.scope,
            Some(Scope::Teams(vec!["payments".into(), "crm".into()]))
        );
        let both = caller(
            &claims(serde_json::json!({"sub": "b", "roles": ["team_lead", "auditor"]})),
            &c,
        )
        .unwrap();
        assert_eq!(both.scope, Some(Scope::All));
        let eu = caller(
            &claims(
                serde_json::json!({"sub": "c", "roles": "tenant_auditor", "tenants": "acme-eu"}),
            ),
            &c,
        )
        .unwrap();
        assert_eq!(eu.scope, Some(Scope::Tenants(vec!["acme-eu".into()])));
        let fin = caller(
            &claims(serde_json::json!({"sub": "d", "roles": ["finance"]})),
            &c,
        )
        .unwrap();
        assert_eq!(fin.scope, None, "finance reads aggregates, not rows");
        assert!(
            caller(
                &claims(serde_json::json!({"sub": "e", "roles": ["root"]})),
                &c
            )
            .is_none()
        );
        assert!(caller(&claims(serde_json::json!({"sub": "f"})), &c).is_none());
        let lead_no_teams = caller(
            &claims(serde_json::json!({"sub": "g", "roles": ["team_lead"]})),
            &c,
        )
        .unwrap();
        assert_eq!(lead_no_teams.scope, Some(Scope::Teams(Vec::new())));
    }
}
