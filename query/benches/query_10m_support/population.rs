//! Who and what the synthetic calls are about: principals, teams, tenants, cost centres, MCP
//! servers, tools and models. Every attribute is a pure function of an index, so any worker
//! thread can derive it without shared state.

use calltrail_schemas::{OperationClass, PrincipalKind};

use super::rng::{Rng, mix};

/// Principals (people and service accounts).
pub(crate) const PRINCIPALS: usize = 2_000;
/// Teams; each belongs to one tenant and one cost centre.
pub(crate) const TEAMS: usize = 40;
/// Tenants (legal entities).
pub(crate) const TENANTS: usize = 10;
/// Cost centres.
pub(crate) const COST_CENTERS: usize = 20;
/// MCP servers.
pub(crate) const SERVERS: usize = 60;
/// Tools, spread over the servers.
pub(crate) const TOOLS: usize = 400;
/// Share of calls with no principal at all (`unattributed`, null principal and team).
pub(crate) const UNATTRIBUTED_SHARE: f64 = 0.015;

/// MCP clients agents run in.
pub(crate) const CLIENTS: &[&str] = &[
    "claude-desktop",
    "cursor",
    "vscode-copilot",
    "goose",
    "internal-agent",
];

/// Models (request model, provider, weight in draws).
pub(crate) const MODELS: &[(&str, &str, f64)] = &[
    ("claude-sonnet-4-5", "anthropic", 0.40),
    ("claude-haiku-4-5", "anthropic", 0.20),
    ("gpt-5", "openai", 0.20),
    ("gpt-5-mini", "openai", 0.12),
    ("gemini-2.5-pro", "gcp.gemini", 0.08),
];

/// Who a call is attributed to.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub(crate) principal: Option<String>,
    pub(crate) kind: PrincipalKind,
    pub(crate) team: Option<String>,
    pub(crate) tenant: Option<String>,
    pub(crate) cost_center: Option<String>,
}

/// True for the principals that are service accounts: about 6% of identities.
fn is_service_account(i: usize) -> bool {
    mix(i as u64 ^ 0x5a) % 100 < 6
}

/// The name of principal `i` (`user0100@corp.example`, `svc-ci-0107`).
pub(crate) fn principal_name(i: usize) -> String {
    if is_service_account(i) {
        format!("svc-ci-{i:04}")
    } else {
        format!("user{i:04}@corp.example")
    }
}

/// Principal `i`, or an unattributed caller when `i` is `None`.
pub(crate) fn who(i: Option<usize>) -> Who {
    let Some(i) = i else {
        return Who {
            principal: None,
            kind: PrincipalKind::Unattributed,
            team: None,
            tenant: None,
            cost_center: None,
        };
    };
    let team = (mix(i as u64 ^ 0x7ea3) % TEAMS as u64) as usize;
    Who {
        principal: Some(principal_name(i)),
        kind: if is_service_account(i) {
            PrincipalKind::ServiceAccount
        } else {
            PrincipalKind::Human
        },
        team: Some(format!("team-{team:02}")),
        tenant: Some(format!("tenant-{:02}", team % TENANTS)),
        cost_center: Some(format!("CC-{}", 100 + team % COST_CENTERS)),
    }
}

/// Draws the caller of a new trace: `None` (unattributed) for a small share, else a principal
/// with a skewed popularity (the busiest has ~0.6% of calls, principal 100 about 0.1%).
pub(crate) fn draw_principal(rng: &mut Rng) -> Option<usize> {
    if rng.chance(UNATTRIBUTED_SHARE) {
        None
    } else {
        Some(rng.skewed(PRINCIPALS, 1.5))
    }
}

/// One tool: its server, name and operation class.
#[derive(Debug, Clone)]
pub(crate) struct Tool {
    pub(crate) server: usize,
    pub(crate) name: String,
    pub(crate) class: OperationClass,
}

/// Tool `j`: classes are read 55%, write 25%, delete 5%, admin 5%, unknown 10%.
pub(crate) fn tool(j: usize) -> Tool {
    const NOUNS: &[&str] = &[
        "issue", "file", "ticket", "record", "page", "table", "bucket", "user", "secret", "build",
    ];
    let h = mix(j as u64 ^ 0x7001);
    let (class, verb) = match h % 100 {
        0..55 => (OperationClass::Read, "get"),
        55..80 => (OperationClass::Write, "update"),
        80..85 => (OperationClass::Delete, "delete"),
        85..90 => (OperationClass::Admin, "grant"),
        _ => (OperationClass::Unknown, "run"),
    };
    let noun = NOUNS[(h >> 8) as usize % NOUNS.len()];
    Tool {
        server: j % SERVERS,
        name: format!("{verb}_{noun}_{j:03}"),
        class,
    }
}

/// The name of MCP server `s`.
pub(crate) fn server_name(s: usize) -> String {
    format!("mcp-server-{s:02}")
}

/// Draws a model by weight.
pub(crate) fn draw_model(rng: &mut Rng) -> (&'static str, &'static str) {
    let mut u = rng.unit();
    for &(model, provider, weight) in MODELS {
        if u < weight {
            return (model, provider);
        }
        u -= weight;
    }
    (MODELS[0].0, MODELS[0].1)
}
