//! `calltrail token`: a short-lived bearer token for the query API, signed by the local key that
//! `serve` trusts when no identity provider is configured, so a newcomer can query in one step.

use anyhow::{Result, bail};
use calltrail_query::auth::{DEFAULT_AUDIENCE, LOCAL_ISSUER, Role, local_key};
use calltrail_query::jwt::Claims;

use super::ConfigArgs;

/// Arguments of `calltrail token`.
#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// The role: auditor, tenant_auditor, team_lead, finance, admin.
    #[arg(long)]
    role: String,
    /// A team a team lead sees (repeat for several).
    #[arg(long)]
    team: Vec<String>,
    /// A tenant a tenant auditor sees (repeat for several).
    #[arg(long)]
    tenant: Vec<String>,
    /// Who the token names (`sub`).
    #[arg(long, default_value = "local-user")]
    subject: String,
    /// Lifetime in seconds (at most a day).
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
    /// Print a link to the web UI (on `api.listen`) that logs in with the token instead of the
    /// token itself. The token is in the link's fragment, which browsers never send to a server.
    #[arg(long)]
    url: bool,
}

pub(crate) fn run(args: &TokenArgs) -> Result<()> {
    let config = args.config.load()?;
    if config.api.auth.uses_identity_provider() {
        let key = if config.api.auth.jwks_url.is_some() {
            "api.auth.jwks_url"
        } else {
            "api.auth.jwks_file"
        };
        bail!("{key} is set: the server trusts your identity provider's tokens, not local ones");
    }
    if Role::parse(&args.role).is_none() {
        bail!(
            "--role: {:?} is not one of auditor, tenant_auditor, team_lead, finance, admin",
            args.role
        );
    }
    if !(1..=86_400).contains(&args.ttl_secs) {
        bail!("--ttl-secs: must be between 1 and 86400");
    }
    let key = local_key(&config.data_dir).map_err(|e| anyhow::anyhow!(e))?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let auth = &config.api.auth;
    let claims: Claims = serde_json::from_value(serde_json::json!({
        "iss": if auth.issuer.is_empty() { LOCAL_ISSUER } else { auth.issuer.as_str() },
        "aud": if auth.audience.is_empty() { DEFAULT_AUDIENCE } else { auth.audience.as_str() },
        "sub": args.subject,
        "iat": now,
        "nbf": now,
        "exp": now + args.ttl_secs,
        auth.role_claim.as_str(): [args.role],
        auth.team_claim.as_str(): args.team,
        auth.tenant_claim.as_str(): args.tenant,
    }))?;
    let token = key.sign(&claims)?;
    if args.url {
        println!("http://{}/ui/#token={token}", config.api.listen);
    } else {
        println!("{token}");
    }
    Ok(())
}
