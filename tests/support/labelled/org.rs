//! The organisation: teams, people, service accounts, servers and their targets; the calendar
//! (weekdays, holidays, days off) deciding who works when; and the keyed PRNG behind every
//! decision.

use calltrail_schemas::record::Attribution;
use calltrail_schemas::{OperationClass, PrincipalKind};

use super::SEED;

/// SplitMix64: small, fast and the same everywhere.
pub struct Rng(u64);

/// SplitMix64's finaliser: spreads the bits of `z` (also used to derive span ids).
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A stream keyed by `parts`: the decisions about one principal's day do not depend on how
    /// many other decisions were made before, so a shorter store is a prefix of a longer one.
    pub fn keyed(parts: &[u64]) -> Self {
        Self(
            parts
                .iter()
                .fold(SEED, |s, p| mix(s ^ p.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
        )
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Poisson(`lambda`) by Knuth's method: fine for the small rates used here, and without the
    /// heavy tail a log-normal or Pareto would give (which robust-z rules would rightly flag).
    pub fn poisson(&mut self, lambda: f64) -> u32 {
        let floor = (-lambda).exp();
        let (mut k, mut p) = (0, 1.0);
        loop {
            p *= self.unit();
            if p <= floor {
                return k;
            }
            k += 1;
        }
    }

    /// One of `items` (not empty), uniformly.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Where a team works, which decides its hours and holidays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Region {
    /// Works from 06–09 UTC; holidays on days 11 and 28.
    Eu,
    /// Works from 13–15 UTC; holidays on days 11 and 35.
    Us,
}

/// Team, tenant, region.
const TEAMS: [(&str, &str, Region); 12] = [
    ("payments", "acme-uk", Region::Eu),
    ("cards", "acme-uk", Region::Eu),
    ("lending", "acme-de", Region::Eu),
    ("treasury", "acme-de", Region::Eu),
    ("risk", "acme-fr", Region::Eu),
    ("fraud", "acme-fr", Region::Eu),
    ("compliance", "acme-uk", Region::Eu),
    ("wealth", "acme-de", Region::Eu),
    ("markets", "acme-us", Region::Us),
    ("crm", "acme-us", Region::Us),
    ("platform", "acme-us", Region::Us),
    ("research", "acme-us", Region::Us),
];

/// Shared servers: name, three read targets (`docs://` ones are resources), one write.
const SHARED: [(&str, [&str; 3], &str); 6] = [
    (
        "jira-mcp",
        ["jira_search", "jira_get_issue", "jira_list_sprints"],
        "jira_create_issue",
    ),
    (
        "confluence-mcp",
        [
            "confluence_search",
            "confluence_get_page",
            "confluence_list_spaces",
        ],
        "confluence_edit_page",
    ),
    (
        "github-mcp",
        ["github_search_code", "github_get_file", "github_list_prs"],
        "github_comment",
    ),
    (
        "slack-mcp",
        ["slack_search", "slack_read_channel", "slack_list_users"],
        "slack_post",
    ),
    (
        "docs-mcp",
        [
            "docs_search",
            "docs://handbook/onboarding",
            "docs://policies/expenses",
        ],
        "docs_edit",
    ),
    (
        "warehouse-mcp",
        [
            "warehouse_query",
            "warehouse_describe",
            "warehouse_list_tables",
        ],
        "warehouse_insert",
    ),
];

/// Servers nobody uses normally, each called once by one team (D3).
pub const UNAPPROVED: [&str; 5] = [
    "pastebin-mcp",
    "shadow-notes-mcp",
    "personal-drive-mcp",
    "free-llm-proxy-mcp",
    "scraper-mcp",
];

/// Which days nobody works (service accounts and whoever is on call still do), and where.
const HOLIDAYS: [(u32, Option<Region>); 3] =
    [(11, None), (28, Some(Region::Eu)), (35, Some(Region::Us))];

/// First names of the people (with their team and number, unique).
const FIRST_NAMES: [&str; 20] = [
    "ana", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jonas", "kira",
    "liam", "mona", "nils", "olga", "paul", "rosa", "sven", "tara", "vera",
];

/// Something a call can target: a tool, or a resource read with `resources/read`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The MCP server.
    pub server: String,
    /// The tool name or resource URI.
    pub name: String,
    /// True for a resource (`resources/read`), false for a tool (`tools/call`).
    pub resource: bool,
    /// Read, write or delete.
    pub class: OperationClass,
    /// The team owning the server; `None` for shared servers and unapproved ones.
    pub owner: Option<usize>,
}

/// A team: its tenant, cost centre, servers and members.
#[derive(Debug, Clone)]
pub struct Team {
    /// Its name (the `team` column).
    pub name: &'static str,
    /// Its legal entity (the `tenant` column).
    pub tenant: &'static str,
    /// Its cost centre (`CC-100` …).
    pub cost_center: String,
    /// Where it works.
    pub region: Region,
    /// Read targets of its own two servers (indices into [`Org::targets`]).
    pub reads: Vec<u16>,
    /// Its own servers' write tools.
    pub writes: Vec<u16>,
    /// Its own servers' delete tools.
    pub deletes: Vec<u16>,
    /// Read targets of the three shared servers it uses.
    pub shared_reads: Vec<u16>,
    /// Its people, new joiner last (indices into [`Org::principals`]).
    pub humans: Vec<u16>,
    /// Its two service accounts.
    pub services: Vec<u16>,
}

/// A person or a service account.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The `principal` column: an e-mail address, or `svc-<team>-<role>`.
    pub name: String,
    /// Human or service account.
    pub kind: PrincipalKind,
    /// Index into [`Org::teams`].
    pub team: usize,
    /// First working hour (UTC) of a human's day.
    pub start_hour: i64,
    /// Calls per working hour (humans) or per hour (service accounts).
    pub rate: f64,
    /// First day of activity (new joiners start late).
    pub joined_day: u32,
    /// Read targets it uses.
    pub reads: Vec<u16>,
    /// The write tool it uses, if any (humans), or its write and delete tools (accounts).
    pub writes: Vec<u16>,
    /// Its turn in the team's on-call rotation (weeks `w` with `w % 4 == turn`).
    pub on_call: Option<u64>,
    /// Tokens on a normal working day.
    pub tokens: f64,
    /// LLM calls on a working day.
    pub llm_calls: u32,
    pub client: &'static str,
    pub attribution: Attribution,
}

impl Principal {
    /// True for the new joiners (less than 14 days of history when they start).
    pub fn is_joiner(&self) -> bool {
        self.joined_day > 0
    }

    /// True for people (not service accounts).
    pub fn is_human(&self) -> bool {
        self.kind == PrincipalKind::Human
    }
}

/// The organisation: teams, principals, targets and the approved servers.
#[derive(Debug, Clone)]
pub struct Org {
    /// The 12 teams.
    pub teams: Vec<Team>,
    /// Everyone, team by team: people, then the team's service accounts.
    pub principals: Vec<Principal>,
    /// Every tool and resource, normal or not; events refer to them by index.
    pub targets: Vec<Target>,
    /// Every server normal activity uses.
    pub approved_servers: Vec<String>,
    /// The tools of the unapproved servers only incidents call, one per server.
    pub unapproved: Vec<u16>,
    /// The `docs-mcp` resources only the resource sweeps read.
    pub sweep_resources: Vec<u16>,
}

impl Org {
    /// The organisation (always the same one).
    pub fn build() -> Self {
        let mut org = Org {
            teams: Vec::new(),
            principals: Vec::new(),
            targets: Vec::new(),
            approved_servers: Vec::new(),
            unapproved: Vec::new(),
            sweep_resources: Vec::new(),
        };
        let shared: Vec<Vec<u16>> = SHARED.iter().map(|s| org.add_shared(s)).collect();
        for t in 0..TEAMS.len() {
            org.add_team(t, &shared);
        }
        for server in UNAPPROVED {
            let tool = format!(
                "{}_fetch",
                server.trim_end_matches("-mcp").replace('-', "_")
            );
            let id = org.add_target(server, &tool, OperationClass::Read, None);
            org.unapproved.push(id);
        }
        for k in 0..20 {
            let uri = format!("docs://policies/p{k:02}");
            let id = org.add_target("docs-mcp", &uri, OperationClass::Read, None);
            org.sweep_resources.push(id);
        }
        org
    }

    fn add_target(
        &mut self,
        server: &str,
        name: &str,
        class: OperationClass,
        owner: Option<usize>,
    ) -> u16 {
        self.targets.push(Target {
            server: server.into(),
            name: name.into(),
            resource: name.contains("://"),
            class,
            owner,
        });
        (self.targets.len() - 1) as u16
    }

    /// Adds a shared server; returns its read targets.
    fn add_shared(&mut self, (server, reads, write): &(&str, [&str; 3], &str)) -> Vec<u16> {
        self.approved_servers.push((*server).into());
        self.add_target(server, write, OperationClass::Write, None);
        reads
            .iter()
            .map(|r| self.add_target(server, r, OperationClass::Read, None))
            .collect()
    }

    fn add_team(&mut self, t: usize, shared: &[Vec<u16>]) {
        let (name, tenant, region) = TEAMS[t];
        let mut team = Team {
            name,
            tenant,
            cost_center: format!("CC-{}", 100 + t * 10),
            region,
            reads: Vec::new(),
            writes: Vec::new(),
            deletes: Vec::new(),
            shared_reads: Vec::new(),
            humans: Vec::new(),
            services: Vec::new(),
        };
        for (kind, reads) in [
            ("ledger", ["get", "list", "search", "export"]),
            ("reports", ["get", "list", "summarize", "chart"]),
        ] {
            let server = format!("{name}-{kind}-mcp");
            self.approved_servers.push(server.clone());
            for r in reads {
                let id = self.add_target(
                    &server,
                    &format!("{name}_{kind}_{r}"),
                    OperationClass::Read,
                    Some(t),
                );
                team.reads.push(id);
            }
            let verb = if kind == "ledger" {
                "update"
            } else {
                "publish"
            };
            let id = self.add_target(
                &server,
                &format!("{name}_{kind}_{verb}"),
                OperationClass::Write,
                Some(t),
            );
            team.writes.push(id);
            let id = self.add_target(
                &server,
                &format!("{name}_{kind}_purge"),
                OperationClass::Delete,
                Some(t),
            );
            team.deletes.push(id);
        }
        // Three shared servers each; over 12 teams every shared server gets 6 of them.
        for s in [t % 6, (t + 1) % 6, (t + 3) % 6] {
            team.shared_reads.extend(&shared[s]);
        }
        let humans = 14 + t % 5;
        for j in 0..=humans {
            let p = self.human(t, &team, j, j == humans);
            team.humans.push(self.push_principal(p, &team));
        }
        for role in ["sync", "etl"] {
            let p = service(t, &team, role);
            team.services.push(self.push_principal(p, &team));
        }
        self.teams.push(team);
    }

    fn push_principal(&mut self, mut p: Principal, team: &Team) -> u16 {
        p.attribution = Attribution {
            principal: Some(p.name.clone()),
            principal_source: Some("span:enduser.id".into()),
            principal_kind: Some(p.kind),
            principal_reason: "directory".into(),
            team: Some(team.name.into()),
            tenant: Some(team.tenant.into()),
            cost_center: Some(team.cost_center.clone()),
        };
        self.principals.push(p);
        (self.principals.len() - 1) as u16
    }

    /// The `j`-th human of team `t`. Targets are dealt round-robin so that each of the team's
    /// targets goes to several members (D7 sees none used by a lone person).
    fn human(&self, t: usize, team: &Team, j: usize, joiner: bool) -> Principal {
        let mut rng = Rng::keyed(&[1, t as u64, j as u64]);
        let mut reads: Vec<u16> = (0..3)
            .map(|k| team.reads[(j * 3 + k) % team.reads.len()])
            .collect();
        reads.extend((0..2).map(|k| team.shared_reads[(j * 2 + k) % team.shared_reads.len()]));
        let start_hour = match team.region {
            Region::Eu => 6 + rng.below(4) as i64,
            Region::Us => 13 + rng.below(3) as i64,
        };
        Principal {
            name: format!(
                "{}.{}{j:02}@acme.example",
                FIRST_NAMES[(j + t) % FIRST_NAMES.len()],
                team.name
            ),
            kind: PrincipalKind::Human,
            team: t,
            start_hour,
            rate: 2.0 + 2.5 * rng.unit(),
            joined_day: if joiner { 40 + (t % 5) as u32 } else { 0 },
            reads,
            writes: if j.is_multiple_of(2) {
                vec![team.writes[(j / 2) % 2]]
            } else {
                Vec::new()
            },
            on_call: (j < 4 && !joiner).then_some(j as u64),
            tokens: 20_000.0 + 60_000.0 * rng.unit(),
            llm_calls: 4 + rng.below(5) as u32,
            client: ["claude-code", "cursor", "copilot-agent"][j % 3],
            attribution: Attribution::default(),
        }
    }
}

fn service(t: usize, team: &Team, role: &str) -> Principal {
    let mut rng = Rng::keyed(&[2, t as u64, role.len() as u64]);
    Principal {
        name: format!("svc-{}-{role}", team.name),
        kind: PrincipalKind::ServiceAccount,
        team: t,
        start_hour: 0,
        rate: 1.5 + 1.5 * rng.unit(),
        joined_day: 0,
        reads: vec![team.reads[0], team.reads[1], team.reads[6]],
        writes: vec![team.writes[0], team.deletes[0], team.deletes[1]],
        on_call: None,
        tokens: 0.0,
        llm_calls: 0,
        client: "batch-runner",
        attribution: Attribution::default(),
    }
}

pub fn is_weekday(day: u32) -> bool {
    day % 7 < 5
}

pub fn is_holiday(day: u32, region: Region) -> bool {
    HOLIDAYS
        .iter()
        .any(|&(d, r)| d == day && r.is_none_or(|r| r == region))
}

/// True when human `who` works on `day` (weekday, no holiday, joined, not on leave).
pub fn works(org: &Org, who: u16, day: u32) -> bool {
    let p = &org.principals[who as usize];
    p.is_human()
        && day >= p.joined_day
        && is_weekday(day)
        && !is_holiday(day, org.teams[p.team].region)
        && Rng::keyed(&[3, u64::from(who), u64::from(day)]).below(100) >= 4
}

/// True when human `who` works during `hour` (of day) on `day`.
pub fn works_at(org: &Org, who: u16, day: u32, hour: i64) -> bool {
    let p = &org.principals[who as usize];
    works(org, who, day) && (p.start_hour..p.start_hour + 8).contains(&hour)
}
