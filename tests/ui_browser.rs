//! The web UI in a real browser: `calltrail serve` filled with two weeks of demo traffic from six
//! teams (and the detectors run over it), driven in headless Chromium (Debian's, see
//! `support/browser.rs`). Every page loads and reaches `data-state=ready`; the charts are images
//! with data points; the numbers shown are the API's to the digit (KPIs for all teams and for one
//! team, chargeback rows, drill-down, anomalies, audit rows); the FOCUS CSV downloads; a team
//! lead's token sees only their team; and the browser's network log holds no request to any
//! host but the server. Screenshots of every page land in `target/ui-screenshots/`.

#![allow(clippy::unwrap_used)]

#[path = "support/browser.rs"]
mod browser;
mod support;
mod tamper_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use browser::{Browser, js_str};
use serde_json::Value;
use support::Server;
use tamper_support::{calltrail_ok, os};

/// The demo traffic: two whole weeks from a Monday, inside one month (a demo task averages
/// about six spans, and `--hours` spreads three spans per step: 672 hours of steps fill 14 days).
const START: &str = "2025-07-07";
const HOURS: &str = "672";
const SPANS: &str = "8000";
const FROM: &str = "2025-07-07";
const TO: &str = "2025-07-21";
const DETECT_TO: &str = "2025-07-09";
const MONTH: &str = "2025-07";
const MONTH_FROM: &str = "2025-07-01";
const MONTH_TO: &str = "2025-08-01";

/// How long a page may take to reach `ready` (debug build, 2 cores, other tests running).
const PAGE: Duration = Duration::from_secs(30);
/// Pages whose reports do not come from the daily roll-ups (chargeback drill-down and FOCUS,
/// a team lead's audit search): 30-60 s each in a debug build on a busy 2-core machine.
const SLOW_PAGE: Duration = Duration::from_secs(180);

/// Prices for the demo's servers and models; the retention policy is never applied (the data
/// is older than it keeps reads), nor the detectors' schedule (the test runs them once).
const CONFIG: &str = r#"
# The chargeback drill-down and FOCUS reports read the calls, not the roll-ups: allow a debug
# build on a busy 2-core machine time for them.
[query]
timeout_ms = 170000

[retention]
apply_every_secs = 0

# ledger-mcp is not approved: the detectors' D3 reports it, so the anomalies page has rows.
[detect]
enabled = false
approved_servers = ["payments-mcp", "crm-mcp", "github-mcp", "confluence-mcp"]

[chargeback]
currency = "EUR"
[[chargeback.price_tables]]
version = "2025-06"
platform_monthly_cost = 1200.0
allocation = "proportional"
default_per_call = 0.001
per_second = 0.0001
[[chargeback.price_tables.calls]]
server = "payments-mcp"
operation_class = "write"
per_call = 0.02
[[chargeback.price_tables.models]]
model = "gpt-5"
per_1k_input_tokens = 1.25
per_1k_output_tokens = 10.0
[[chargeback.price_tables]]
version = "2025-07b"
effective_from = "2025-07-14"
platform_monthly_cost = 1500.0
allocation = "proportional"
default_per_call = 0.002
per_second = 0.0001
"#;

/// The server, its demo data and the tokens the tests log in with.
struct Fixture {
    server: Server,
    rt: tokio::runtime::Runtime,
    /// With a timeout long enough for the slowest report in a debug build.
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT` of the query API and the UI.
    base: String,
    auditor: String,
}

impl Fixture {
    fn start() -> Fixture {
        let mut server = Server::start_with_config(CONFIG);
        let out = calltrail_ok(&[
            os("demo"),
            os("--endpoint"),
            os(&server.grpc_url()),
            os("--spans"),
            os(SPANS),
            os("--hours"),
            os(HOURS),
            os("--start"),
            os(START),
            os("--seed"),
            os("9"),
            os("--batch"),
            os("500"),
        ]);
        let sent: i64 = out
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("calltrail demo printed {out:?}"));
        assert!(out.contains("rejected 0"), "calltrail demo: {out}");
        // Every span is a row once written (tool_calls or llm_calls); a stop is then quick.
        server.wait_for_count(
            "SELECT (SELECT count(*) FROM tool_calls) + (SELECT count(*) FROM llm_calls) AS n",
            sent,
            Duration::from_secs(120),
        );
        server.stop();
        // The detectors over the first two days (their daily roll-ups are the slow part): D3
        // reports the unapproved ledger-mcp there.
        let mut detect = std::process::Command::new(support::BIN);
        detect
            .arg("detect")
            .arg("-c")
            .arg(server.data_dir().join("calltrail.toml"))
            .arg("--data-dir")
            .arg(server.data_dir())
            .args(["--from", FROM, "--to", DETECT_TO]);
        let done = support::run(detect, Duration::from_secs(180));
        assert!(
            done.status.success(),
            "calltrail detect failed:\n{}\n{}",
            done.stdout,
            done.stderr
        );
        let out = done.stdout;
        println!("calltrail detect: {out}");
        server.restart();
        let base = server.sql_url().replace("/api/v1/sql", "");
        let auditor = token(
            &server,
            &["--role", "auditor", "--subject", "soc@bank.example"],
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap();
        let f = Fixture {
            server,
            rt,
            client,
            base,
            auditor,
        };
        // The first report over a day computes that day's roll-up (query/src/report_rollup.rs):
        // seconds a day in a debug build. Do it here, so the pages' waits measure the UI.
        let t = Instant::now();
        f.get(&f.auditor, &format!("/api/v1/roi?from={FROM}&to={TO}"));
        println!("report roll-ups computed in {:?}", t.elapsed());
        f
    }

    /// `GET path_and_query` with `token`; panics unless 200. Returns the body.
    fn get_text(&self, token: &str, path_and_query: &str, accept: &str) -> String {
        let url = format!("{}{path_and_query}", self.base);
        let (status, body) = self.rt.block_on(async {
            let resp = self
                .client
                .get(&url)
                .header("authorization", format!("Bearer {token}"))
                .header("accept", accept)
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        });
        assert_eq!(status, 200, "GET {path_and_query}: {body}");
        body
    }

    fn get(&self, token: &str, path_and_query: &str) -> Value {
        let body = self.get_text(token, path_and_query, "application/json");
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path_and_query} is not JSON ({e}): {body}"))
    }
}

fn token(server: &Server, args: &[&str]) -> String {
    let mut all = vec![os("token"), os("--data-dir"), server.data_dir().as_os_str()];
    all.extend(args.iter().map(|a| os(a)));
    calltrail_ok(&all).trim().to_owned()
}

/// Moves the UI to `route` (e.g. `#/chargeback?month=2025-07`) and waits until the page named
/// by the route is `ready`.
fn show(b: &Browser, route: &str) {
    let page = route.trim_start_matches("#/").split('?').next().unwrap();
    show_within(b, route, timeout_of(page));
}

/// [`show`] with a timeout of its own.
fn show_within(b: &Browser, route: &str, timeout: Duration) {
    let page = route
        .trim_start_matches("#/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let t = Instant::now();
    stale(b);
    b.eval(&format!("location.hash = {}; true", js_str(route)));
    wait_ready_within(b, &page, &format!("after {route}"), timeout);
    println!("{route}: ready in {:?}", t.elapsed());
}

/// Marks `main#page` stale, so that a wait for `ready` after an action that re-renders the page
/// cannot see the state the page had before it.
fn stale(b: &Browser) {
    b.eval("(() => { const m = document.querySelector('main#page'); if (m) m.dataset.state = 'stale'; return true; })()");
}

fn timeout_of(page: &str) -> Duration {
    if page == "chargeback" {
        SLOW_PAGE
    } else {
        PAGE
    }
}

/// Waits until `main#page` shows `page` in state `ready`; panics with the error text on `error`.
fn wait_ready(b: &Browser, page: &str, when: &str) {
    wait_ready_within(b, page, when, timeout_of(page));
}

fn wait_ready_within(b: &Browser, page: &str, when: &str, timeout: Duration) {
    let js = format!(
        "(() => {{ const m = document.querySelector('main#page'); \
         if (!m || m.dataset.page !== {p}) return null; \
         if (m.dataset.state === 'error') return 'error: ' + \
           ((document.querySelector('#error') || {{}}).textContent || '(no #error)'); \
         return m.dataset.state === 'ready' ? 'ready' : null; }})()",
        p = js_str(page)
    );
    let state = b.wait_for(&format!("page {page} to be ready {when}"), &js, timeout);
    assert_eq!(state, "ready", "page {page} {when}: {state}");
}

/// Waits until the chart `figure[data-chart=NAME]` shows a loaded image with data points;
/// returns the number of points.
fn assert_chart(b: &Browser, page: &str, name: &str) -> u64 {
    let js = format!(
        "(() => {{ const i = document.querySelector('figure[data-chart={name}] img'); \
         if (!i || !i.complete || i.naturalWidth === 0) return null; \
         return {{points: Number(i.dataset.points), src: i.src}}; }})()"
    );
    let chart = b.wait_for(
        &format!("page {page}: figure[data-chart={name}] img to load"),
        &js,
        PAGE,
    );
    let points = chart["points"].as_u64().unwrap_or(0);
    assert!(
        points > 0,
        "page {page}: figure[data-chart={name}] img has data-points={points} (want > 0): {chart}"
    );
    points
}

/// An attribute's text is the API's number. Integers must be equal; for fractions one unit in
/// the last place is allowed, because serde_json's default float parser (without the
/// `float_roundtrip` feature) may read the API's shortest round-trip text one ULP off, while
/// the page's text (JavaScript's shortest round-trip) parses exactly.
fn same_number(shown: &str, api: &Value) -> bool {
    if let (Ok(a), Some(b)) = (shown.parse::<i64>(), api.as_i64()) {
        return a == b;
    }
    match (shown.parse::<f64>(), api.as_f64()) {
        (Ok(a), Some(b)) => a == b || (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()),
        _ => false,
    }
}

/// The KPI elements' `data-value`s equal `week`'s fields.
fn assert_kpis(b: &Browser, week: &Value, what: &str) {
    for kpi in [
        "active_principals",
        "calls",
        "success_rate",
        "p95_ms",
        "attribution_coverage",
    ] {
        let sel = format!("[data-kpi={kpi}]");
        let shown = b
            .attr(&sel, "data-value")
            .unwrap_or_else(|| panic!("page overview ({what}): no {sel} with data-value"));
        assert!(
            same_number(&shown, &week[kpi]),
            "page overview ({what}): {sel} data-value={shown}, the API's last week says {}",
            week[kpi]
        );
    }
}

/// `rows` of `GET /api/v1/roi?by=team` whose key is `team`: the last one.
fn last_week_of(roi: &Value, team: Option<&str>) -> Value {
    roi["weeks"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|w| w["key"].as_str() == team)
        .unwrap_or_else(|| panic!("the API has no week for {team:?}: {roi}"))
        .clone()
}

fn overview(b: &Browser, f: &Fixture) -> (String, Value) {
    let q = format!("from={FROM}&to={TO}");
    show(b, &format!("#/overview?{q}"));
    let all = f.get(&f.auditor, &format!("/api/v1/roi?{q}"));
    let by_team = f.get(&f.auditor, &format!("/api/v1/roi?{q}&by=team"));

    assert_kpis(b, &last_week_of(&all, None), "all teams");
    for w in all["weeks"].as_array().unwrap() {
        let week = w["week_start"].as_str().unwrap();
        let sel = format!("table#roi-weeks tbody tr[data-week={}]", js_str(week));
        assert_eq!(b.count(&sel), 1, "page overview: no {sel}");
    }
    assert_eq!(
        b.count("table#roi-weeks tbody tr"),
        all["weeks"].as_array().unwrap().len(),
        "page overview: table#roi-weeks rows against the API's weeks"
    );
    let top = b.count("#top-tools li");
    assert!(
        (1..=5).contains(&top),
        "page overview: #top-tools li count {top}"
    );
    for chart in ["roi-calls", "roi-active", "roi-p95"] {
        assert_chart(b, "overview", chart);
    }
    b.screenshot("overview");

    // The team filter offers every team the API knows, and shows exactly that team's figures.
    let options: BTreeSet<String> = serde_json::from_value(
        b.eval("[...document.querySelectorAll('select#team-filter option')].map(o => o.value)"),
    )
    .unwrap();
    let mut teams: BTreeSet<String> = by_team["weeks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["key"].as_str().map(str::to_owned))
        .collect();
    assert!(teams.len() >= 2, "the demo has several teams: {teams:?}");
    teams.insert(String::new());
    assert_eq!(options, teams, "page overview: select#team-filter options");

    let team = "payments";
    stale(b);
    b.set_value("select#team-filter", team);
    b.wait_for(
        "page overview: the team in the hash after choosing it",
        &format!("location.hash.includes('team={team}')"),
        PAGE,
    );
    wait_ready(b, "overview", "after select#team-filter = payments");
    let want = last_week_of(&by_team, Some(team));
    // The KPIs follow the filter (the first wait covers a page that re-renders in place).
    b.wait_for(
        "page overview: [data-kpi=calls] to show the team's calls",
        &format!(
            "document.querySelector('[data-kpi=calls]') && \
             Number(document.querySelector('[data-kpi=calls]').dataset.value) === {}",
            want["calls"]
        ),
        PAGE,
    );
    assert_kpis(b, &want, "team payments");
    assert_ne!(
        want["calls"],
        last_week_of(&all, None)["calls"],
        "a team's figures differ from everyone's"
    );
    b.screenshot("overview-team");
    (team.to_owned(), want)
}

/// The rows of `table#chargeback` as (key, kind, calls, total_cost).
fn chargeback_rows(b: &Browser) -> Vec<(String, String, String, String)> {
    let rows = b.eval(
        "[...document.querySelectorAll('table#chargeback tbody tr')].map(tr => [\
           tr.dataset.key, tr.dataset.kind, \
           (tr.querySelector('td[data-col=calls]') || {}).textContent, \
           (tr.querySelector('td[data-col=total_cost]') || {}).textContent])",
    );
    serde_json::from_value::<
        Vec<(
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        )>,
    >(rows.clone())
    .unwrap_or_else(|e| panic!("page chargeback: rows {rows}: {e}"))
    .into_iter()
    .map(|(k, kind, c, t)| {
        (
            k.unwrap_or_else(|| panic!("page chargeback: a row without data-key: {rows}")),
            kind.unwrap_or_default(),
            c.unwrap_or_default().trim().to_owned(),
            t.unwrap_or_default().trim().to_owned(),
        )
    })
    .collect()
}

/// The API's chargeback rows for the month as (key, kind, calls, total_cost).
fn api_chargeback(
    f: &Fixture,
    token: &str,
    by: &str,
) -> (Value, Vec<(String, String, String, String)>) {
    let body = f.get(
        token,
        &format!("/api/v1/chargeback?from={MONTH_FROM}&to={MONTH_TO}&by={by}&granularity=month"),
    );
    let rows = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[by].as_str().unwrap_or_default().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
                r["calls"].to_string(),
                r["total_cost"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (body, rows)
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn chargeback(b: &Browser, f: &Fixture) -> Vec<(String, String, String, String)> {
    let mut want_team = Vec::new();
    // By team and by tenant (cost centres are one per team in the demo: the same rows).
    for by in ["tenant", "team"] {
        show(b, &format!("#/chargeback?month={MONTH}&by={by}"));
        let (body, want_rows) = api_chargeback(f, &f.auditor, by);
        assert!(!want_rows.is_empty(), "the API has chargeback rows by {by}");
        assert_eq!(
            sorted(chargeback_rows(b)),
            sorted(want_rows.clone()),
            "page chargeback (by={by}): table#chargeback rows (key, kind, calls, total_cost) against the API"
        );
        let versions = b.text("#price-versions");
        for v in body["price_table_versions"].as_array().unwrap() {
            let v = v.as_str().unwrap();
            assert!(
                versions.contains(v),
                "page chargeback (by={by}): #price-versions {versions:?} lacks {v}"
            );
        }
        assert_chart(b, "chargeback", "chargeback");
        want_team = want_rows;
    }

    // Drill down into one team (the page shows by=team now).
    b.screenshot("chargeback");
    let team = "payments";
    let sel = format!(
        "table#chargeback tbody tr[data-key={}][data-kind=usage] button.drill",
        js_str(team)
    );
    b.click(&sel);
    let shown = b.wait_for(
        "page chargeback: table#drilldown rows after button.drill",
        "(() => { const r = [...document.querySelectorAll('table#drilldown tbody tr')]; \
           return r.length ? r.map(tr => [tr.dataset.server || '', tr.dataset.tool || '', \
             Number((tr.querySelector('td[data-col=calls]') || {}).textContent)]) : null; })()",
        SLOW_PAGE,
    );
    // The drill-down splits the team's row: its calls add up to the row's (the drill-down
    // endpoint itself costs tens of seconds in a debug build, so it is not asked twice).
    let shown: Vec<(String, String, u64)> = serde_json::from_value(shown).unwrap();
    let pairs: BTreeSet<(&str, &str)> = shown
        .iter()
        .map(|(s, t, _)| (s.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        pairs.len(),
        shown.len(),
        "page chargeback: table#drilldown repeats a server and tool: {shown:?}"
    );
    assert!(
        pairs.iter().any(|(s, _)| *s == "payments-mcp"),
        "page chargeback: table#drilldown for {team} lacks payments-mcp: {shown:?}"
    );
    // One usage row per price-table version in force during the month.
    let row_calls: u64 = want_team
        .iter()
        .filter(|r| r.0 == team && r.1 == "usage")
        .map(|r| r.2.parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        shown.iter().map(|r| r.2).sum::<u64>(),
        row_calls,
        "page chargeback: table#drilldown td[data-col=calls] add up to {team}'s rows"
    );
    b.screenshot("chargeback-drilldown");

    // The FOCUS CSV downloads.
    b.click("button#focus-download");
    let name = format!("focus-{MONTH}.csv");
    let path = b.wait_for_download(&name, SLOW_PAGE);
    let csv = std::fs::read_to_string(&path).unwrap();
    let header = csv.lines().next().unwrap_or_default();
    for column in ["BilledCost", "ChargeCategory"] {
        assert!(
            header.split(',').any(|c| c.trim_matches('"') == column),
            "page chargeback: {name} header lacks {column}: {header}"
        );
    }
    assert!(
        csv.lines().count() > 1,
        "page chargeback: {name} has no rows"
    );
    assert!(
        csv.contains("payments"),
        "page chargeback: {name} names no payments charge"
    );
    want_team
}

/// The array of rows in an API answer: the answer itself, or its `rows`/`calls`/`findings`.
fn rows_of(v: &Value) -> Vec<Value> {
    if let Some(a) = v.as_array() {
        return a.clone();
    }
    for key in ["rows", "calls", "findings", "items"] {
        if let Some(a) = v[key].as_array() {
            return a.clone();
        }
    }
    panic!("no rows in {v}")
}

/// The first of `names` that `row` has, as text.
fn field(row: &Value, names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| match &row[*n] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
        .unwrap_or_default()
}

fn anomalies(b: &Browser, f: &Fixture) {
    let q = format!("from={FROM}&to={TO}");
    show(b, &format!("#/anomalies?{q}"));
    let api = f.get(&f.auditor, &format!("/api/v1/anomalies?{q}"));
    let findings = api["findings"].as_array().unwrap();
    println!("{} findings over the demo's two weeks", findings.len());
    let shown: BTreeSet<String> = serde_json::from_value(b.eval(
        "[...document.querySelectorAll('table#anomalies tbody tr[data-finding-id]')].map(tr => tr.dataset.findingId)",
    ))
    .unwrap();
    let want: BTreeSet<String> = findings
        .iter()
        .map(|x| x["finding_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        shown, want,
        "page anomalies: table#anomalies tr[data-finding-id] against the API's findings"
    );
    b.screenshot("anomalies");
    let Some(first) = findings.first() else {
        return;
    };
    let id = first["finding_id"].as_str().unwrap();
    let row = format!("table#anomalies tbody tr[data-finding-id={}]", js_str(id));
    assert_eq!(
        b.text(&format!("{row} td.explanation")),
        first["explanation"].as_str().unwrap(),
        "page anomalies: {row} td.explanation"
    );

    // Filters: the severity of the first finding, applied with the button.
    let severity = first["severity"].as_str().unwrap();
    b.set_value("select#an-severity", severity);
    stale(b);
    b.click("button#an-apply");
    b.wait_for(
        "page anomalies: severity in the hash after button#an-apply",
        &format!("location.hash.includes('severity={severity}')"),
        PAGE,
    );
    wait_ready(b, "anomalies", "after the severity filter");
    let api = f.get(
        &f.auditor,
        &format!("/api/v1/anomalies?{q}&severity={severity}"),
    );
    let want: BTreeSet<String> = api["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["finding_id"].as_str().unwrap().to_owned())
        .collect();
    let shown: BTreeSet<String> = serde_json::from_value(b.eval(
        "[...document.querySelectorAll('table#anomalies tbody tr[data-finding-id]')].map(tr => tr.dataset.findingId)",
    ))
    .unwrap();
    assert_eq!(
        shown, want,
        "page anomalies (severity={severity}): rows against the API"
    );

    // The link to the underlying calls opens the audit search for the finding's entity.
    let link = b
        .attr(&format!("{row} a.calls-link"), "href")
        .unwrap_or_else(|| panic!("page anomalies: {row} has no a.calls-link"));
    assert!(
        link.contains("#/audit?"),
        "page anomalies: a.calls-link href {link}"
    );
    stale(b);
    b.click(&format!("{row} a.calls-link"));
    wait_ready(b, "audit", "after a.calls-link");
    b.screenshot("anomalies-calls");
}

/// The `data-seq`s of `table#calls`, in order.
fn call_seqs(b: &Browser) -> Vec<String> {
    serde_json::from_value(b.eval(
        "[...document.querySelectorAll('table#calls tbody tr[data-seq]')].map(tr => tr.dataset.seq)",
    ))
    .unwrap()
}

/// The API's calls for `query` (newest first, at most 200) as chain seqs.
fn api_seqs(f: &Fixture, token: &str, query: &str) -> (Vec<Value>, Vec<String>) {
    let rows = rows_of(&f.get(token, &format!("/api/v1/calls?{query}&limit=200")));
    let seqs = rows
        .iter()
        .map(|r| field(r, &["chain_seq", "seq"]))
        .collect();
    (rows, seqs)
}

fn audit(b: &Browser, f: &Fixture, team: &str) {
    show(b, "#/audit");
    b.set_value("#f-team", team);
    b.set_value("#f-server", "payments-mcp");
    b.set_value("#f-from", &format!("{FROM}T00:00"));
    b.set_value("#f-to", &format!("{TO}T00:00"));
    stale(b);
    b.click("button#search");
    b.wait_for(
        "page audit: the filter in the hash after button#search",
        &format!("location.hash.includes('team={team}')"),
        PAGE,
    );
    wait_ready(b, "audit", "after button#search");
    let (_, want) = api_seqs(
        f,
        &f.auditor,
        &format!("team={team}&server=payments-mcp&from={FROM}T00:00:00Z&to={TO}T00:00:00Z"),
    );
    assert!(
        !want.is_empty(),
        "the API finds {team}'s payments-mcp calls"
    );
    assert_eq!(
        call_seqs(b),
        want,
        "page audit: table#calls tr[data-seq] against GET /api/v1/calls (newest first)"
    );
    // Row detail: chain seq and record hash.
    let seq = &want[0];
    b.click(&format!("table#calls tbody tr[data-seq={}]", js_str(seq)));
    let detail = b.wait_for(
        "page audit: #call-detail after clicking a row",
        "(() => { const s = document.querySelector('#call-detail [data-field=chain_seq]'); \
           const h = document.querySelector('#call-detail [data-field=record_hash]'); \
           return s && h && s.textContent.trim() ? [s.textContent.trim(), h.textContent.trim()] : null; })()",
        PAGE,
    );
    assert_eq!(
        detail[0], *seq,
        "page audit: #call-detail [data-field=chain_seq]"
    );
    let hash = detail[1].as_str().unwrap();
    assert!(
        hash.len() == 64 && hash.bytes().all(|c| c.is_ascii_hexdigit()),
        "page audit: #call-detail [data-field=record_hash] is {hash:?}"
    );
    b.screenshot("audit");

    // A compliance export starts, reports its status, and finishes.
    b.click("button#start-export");
    let state = b.wait_for(
        "page audit: #export-status[data-state] after button#start-export",
        "(() => { const s = document.querySelector('#export-status'); \
           return s && s.dataset.state ? [s.dataset.state, s.textContent.trim()] : null; })()",
        Duration::from_secs(90),
    );
    assert_eq!(
        state[0], "done",
        "page audit: #export-status after button#start-export: {state}"
    );
    b.screenshot("audit-export");
}

fn integrity(b: &Browser) {
    show(b, "#/integrity");
    let chains = b.count("table#chains tbody tr[data-chain]");
    assert!(
        chains >= 1,
        "page integrity: no table#chains tr[data-chain]"
    );
    assert!(
        !b.text("#verify-result").is_empty(),
        "page integrity: #verify-result is empty"
    );
    assert_eq!(
        b.count("table#destinations"),
        1,
        "page integrity: table#destinations"
    );
    assert_eq!(b.count("#retention"), 1, "page integrity: #retention");
    assert_eq!(b.count("table#holds"), 1, "page integrity: table#holds");
    b.screenshot("integrity");
}

/// Logs out, logs in with the form as a team lead of `team`, and checks what they see.
///
/// A team lead's reports are their team's figures: the KPIs are the team's row of the auditor's
/// `by=team` ROI (`team_week`), the chargeback rows the team's rows of the auditor's
/// (`team_rows`, to the micro: both are cut from the same roll-ups). The audit search reads the
/// calls, slow in a debug build, so each page is asked once.
fn team_lead(
    b: &Browser,
    f: &Fixture,
    team: &str,
    team_week: &Value,
    team_rows: &[(String, String, String, String)],
) {
    let lead = token(
        &f.server,
        &[
            "--role",
            "team_lead",
            "--team",
            team,
            "--subject",
            "lead@bank.example",
        ],
    );
    b.click("button#logout");
    b.wait_for(
        "form#login after button#logout",
        "!!document.querySelector('form#login input#token') && \
         (location.hash === '' || location.hash === '#') && \
         document.querySelector('main#page').dataset.page === 'login'",
        PAGE,
    );
    b.set_value("form#login input#token", &lead);
    stale(b);
    b.click("#login-submit");
    wait_ready_within(b, "overview", "after logging in as a team lead", SLOW_PAGE);

    let q = format!("from={FROM}&to={TO}");
    show_within(b, &format!("#/overview?{q}"), SLOW_PAGE);
    let options: BTreeSet<String> = serde_json::from_value(
        b.eval("[...document.querySelectorAll('select#team-filter option')].map(o => o.value)"),
    )
    .unwrap();
    assert!(
        options.contains(team) && options.iter().all(|o| o.is_empty() || o == team),
        "page overview (team lead of {team}): select#team-filter offers {options:?}"
    );
    assert_kpis(b, team_week, "team lead");
    b.screenshot("team-lead-overview");

    show_within(b, &format!("#/chargeback?month={MONTH}&by=team"), SLOW_PAGE);
    let rows = chargeback_rows(b);
    assert!(!rows.is_empty(), "page chargeback (team lead): no rows");
    assert!(
        rows.iter().all(|r| r.0 == team),
        "page chargeback (team lead of {team}): table#chargeback shows {rows:?}"
    );
    // The lead's rows are the auditor's rows of the same team, to the micro.
    let mut want: Vec<_> = team_rows.iter().filter(|r| r.0 == team).cloned().collect();
    let mut rows = rows;
    rows.sort();
    want.sort();
    assert_eq!(
        rows, want,
        "page chargeback (team lead of {team}): rows against the team's rows for an auditor"
    );
    b.screenshot("team-lead-chargeback");

    show_within(
        b,
        &format!("#/audit?from={FROM}T00:00&to={TO}T00:00"),
        SLOW_PAGE,
    );
    let (api_rows, want) = api_seqs(
        f,
        &lead,
        &format!("from={FROM}T00:00:00Z&to={TO}T00:00:00Z"),
    );
    assert!(!want.is_empty(), "the API finds the team lead's calls");
    assert!(
        api_rows.iter().all(|r| r["team"].as_str() == Some(team)),
        "GET /api/v1/calls as a team lead returns other teams' calls"
    );
    assert_eq!(
        call_seqs(b),
        want,
        "page audit (team lead of {team}): table#calls rows against the lead's API"
    );
    b.screenshot("team-lead-audit");
}

/// Every request the page made went to the server (or stayed in the browser).
fn assert_only_the_server(b: &Browser, base: &str) {
    let requests = b.requests();
    assert!(
        requests
            .iter()
            .any(|u| u.starts_with(&format!("{base}/api/"))),
        "the network log has no API request: {requests:?}"
    );
    let foreign: Vec<&String> = requests
        .iter()
        .filter(|u| {
            !(u.starts_with(&format!("{base}/"))
                || u.starts_with("data:")
                || u.starts_with("blob:")
                || u.as_str() == "about:blank")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "the UI requested hosts other than the server {base}: {foreign:?}"
    );
}

#[test]
fn the_harness_drives_chromium() {
    let b = Browser::launch();
    b.goto(
        "data:text/html,<select id=s><option value=a>a</option><option value=b>b</option></select>\
         <button id=go onclick=\"document.body.dataset.clicked=document.getElementById('s').value\">go</button>",
    );
    b.wait_for(
        "the data: page",
        "document.readyState === 'complete' && !!document.querySelector('#go')",
        PAGE,
    );
    assert_eq!(b.eval("1 + 1"), 2);
    assert_eq!(
        b.eval("Promise.resolve({a: [1, 'x']})"),
        serde_json::json!({"a": [1, "x"]})
    );
    assert!(b.try_eval("null.x").is_err());
    b.set_value("#s", "b");
    b.click("#go");
    assert_eq!(
        b.wait_for("the click", "document.body.dataset.clicked", PAGE),
        "b"
    );
    let png = b.screenshot("harness");
    assert!(std::fs::metadata(png).unwrap().len() > 100);
    assert!(
        b.requests().iter().all(|u| u.starts_with("data:")),
        "{:?}",
        b.requests()
    );
}

#[test]
fn web_ui_pages_in_headless_chromium() {
    let started = Instant::now();
    let f = Fixture::start();
    println!("server filled in {:?}", started.elapsed());

    let b = Browser::launch();
    // The CSP keeps the page to its own origin.
    let csp = f.rt.block_on(async {
        support::http_client()
            .get(format!("{}/ui/", f.base))
            .send()
            .await
            .unwrap()
            .headers()
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned())
    });
    assert!(
        csp.as_deref()
            .is_some_and(|c| c.contains("default-src 'self'")),
        "GET /ui/: Content-Security-Policy is {csp:?}"
    );

    // Log in with the URL fragment: stored, and the fragment replaced by the overview's route.
    b.goto(&format!("{}/ui/#token={}", f.base, f.auditor));
    wait_ready(&b, "overview", "after logging in with #token=");
    let hash = b.eval("location.hash");
    assert!(
        hash.as_str().unwrap().starts_with("#/overview"),
        "the #token= fragment is replaced by #/overview, not {hash}"
    );
    assert_eq!(
        b.eval("location.href.includes(\"token=\")"),
        false,
        "the token stays out of the URL"
    );

    let t = Instant::now();
    let (team, team_week) = overview(&b, &f);
    println!("overview checked in {:?}", t.elapsed());
    let t = Instant::now();
    let team_rows = chargeback(&b, &f);
    println!("chargeback checked in {:?}", t.elapsed());
    let t = Instant::now();
    anomalies(&b, &f);
    println!("anomalies checked in {:?}", t.elapsed());
    let t = Instant::now();
    audit(&b, &f, &team);
    println!("audit checked in {:?}", t.elapsed());
    let t = Instant::now();
    integrity(&b);
    println!("integrity checked in {:?}", t.elapsed());
    let t = Instant::now();
    team_lead(&b, &f, &team, &team_week, &team_rows);
    println!("team lead checked in {:?}", t.elapsed());
    assert_only_the_server(&b, &f.base);
    println!(
        "web UI checked in {:?}; screenshots in {}",
        started.elapsed(),
        browser::screenshot_dir().display()
    );
}
