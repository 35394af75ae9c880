//! The chargeback and ROI endpoints end to end: a real server over the hand-countable ledger of
//! `support/ledger.rs` with its price tables, tokens minted by `calltrail token`, requests over
//! HTTP. Finance sees everyone's aggregates but not people; a team lead sees their team's share
//! only; bad parameters get a 400 naming the parameter; every report is on record.

#![allow(clippy::unwrap_used)]

#[path = "support/ledger.rs"]
mod ledger;
mod support;
mod tamper_support;

use serde_json::Value;
use support::Server;
use tamper_support::{calltrail_ok, os};

fn token(server: &Server, args: &[&str]) -> String {
    let mut all = vec![os("token"), os("--data-dir"), server.data_dir().as_os_str()];
    all.extend(args.iter().map(|a| os(a)));
    calltrail_ok(&all).trim().to_owned()
}

fn get(server: &Server, token: &str, path_and_query: &str, accept: &str) -> (u16, String) {
    let url = server.sql_url().replace("/api/v1/sql", path_and_query);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .header("authorization", format!("Bearer {token}"))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

fn json(server: &Server, token: &str, path_and_query: &str) -> (u16, Value) {
    let (status, body) = get(server, token, path_and_query, "application/json");
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn rows_by(body: &Value, column: &str) -> Vec<(Option<String>, Value)> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[column].as_str().map(str::to_owned), r.clone()))
        .collect()
}

#[test]
fn chargeback_and_roi_over_http_respect_roles() {
    let data = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(ledger::small(data.path()));
    let config = format!(
        "[chargeback]\n{}",
        ledger::PRICES.replace("[[price_tables", "[[chargeback.price_tables")
    );
    let mut server = Server::start_in(data.path(), &config);
    let finance = token(
        &server,
        &["--role", "finance", "--subject", "fin@bank.example"],
    );
    let lead = token(
        &server,
        &[
            "--role",
            "team_lead",
            "--team",
            "crm",
            "--subject",
            "lead@bank.example",
        ],
    );

    // Finance: every team's October, the fixed cost reconciled (allocated + idle = platform).
    let (status, body) = json(
        &server,
        &finance,
        "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=team&granularity=month",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["price_table_versions"], serde_json::json!(["2026-10"]));
    assert_eq!(body["totals"]["platform_cost"], "3100.000000");
    assert_eq!(body["totals"]["reconciles"], true, "{body}");
    let teams = rows_by(&body, "team");
    let payments = &teams
        .iter()
        .find(|(t, _)| t.as_deref() == Some("payments"))
        .unwrap()
        .1;
    assert_eq!(payments["calls"], 4);
    assert_eq!(payments["total_cost"], "1785.000091");
    assert_eq!(
        teams.len(),
        4,
        "unattributed, crm, payments, research: {body}"
    );

    // Finance does not see people unless configured.
    let (status, body) = json(
        &server,
        &finance,
        "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=user",
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("finance_sees_users")
    );

    // A team lead sees their team's row of the organisation's report only: the proportional
    // share of the whole platform (3100 x 2 of 7 calls; the split that makes the shares add up
    // to the platform cost rounds this one up), no other team, no idle row.
    let (status, body) = json(
        &server,
        &lead,
        "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=team",
    );
    assert_eq!(status, 200, "{body}");
    let teams = rows_by(&body, "team");
    assert_eq!(teams.len(), 1, "{body}");
    assert_eq!(teams[0].0.as_deref(), Some("crm"));
    assert_eq!(teams[0].1["platform_cost"], "885.714286");
    assert_eq!(body["complete"], false);
    // By server, their rows are only their calls.
    let (status, body) = json(
        &server,
        &lead,
        "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=server",
    );
    assert_eq!(status, 200, "{body}");
    let servers: Vec<_> = rows_by(&body, "server")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        servers,
        [None, Some("crm-mcp".to_string())],
        "tokens, then crm-mcp: {body}"
    );
    // November shares the fixed cost evenly across all teams: a partial view cannot be priced
    // by server without knowing other teams' groups, and says so.
    let (status, body) = json(
        &server,
        &lead,
        "/api/v1/chargeback?from=2026-11-01&to=2026-12-01&by=server",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("evenly"), "{body}");

    // CSV.
    let (status, csv) = get(
        &server,
        &finance,
        "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=cost_center",
        "text/csv",
    );
    assert_eq!(status, 200, "{csv}");
    assert!(
        csv.starts_with("period_start,period_end,kind,cost_center,price_table_version"),
        "{csv}"
    );
    assert!(csv.contains("CC-200"), "{csv}");

    // Bad parameters name themselves.
    for (query, word) in [
        ("/api/v1/chargeback?to=2026-11-01", "from"),
        (
            "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&by=planet",
            "by",
        ),
        (
            "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&granularity=week",
            "granularity",
        ),
        (
            "/api/v1/chargeback?from=2026-11-01&to=2026-10-01",
            "from must be before to",
        ),
        ("/api/v1/chargeback?from=yesterday&to=2026-10-01", "from"),
        (
            "/api/v1/chargeback?from=2026-10-01&to=2026-11-01&limit=5",
            "limit",
        ),
        ("/api/v1/roi?from=2026-10-01&to=2026-11-01&by=user", "by"),
    ] {
        let (status, body) = json(&server, &finance, query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(word),
            "{query}: {body}"
        );
    }
    let (status, _) = json(
        &server,
        "not-a-token",
        "/api/v1/roi?from=2026-10-01&to=2026-11-01",
    );
    assert_eq!(status, 401);

    // ROI: finance sees every team; the team lead only crm.
    let (status, body) = json(
        &server,
        &finance,
        "/api/v1/roi?from=2026-10-01&to=2026-11-01&by=team",
    );
    assert_eq!(status, 200, "{body}");
    let weeks = body["weeks"].as_array().unwrap();
    let pay = weeks.iter().find(|w| w["key"] == "payments").unwrap();
    assert_eq!(pay["calls"], 4);
    assert_eq!(pay["active_principals"], 2);
    assert_eq!(pay["success_rate"], 0.75);
    assert_eq!(pay["p50_ms"], 1000.0);
    let top = body["top_tools"].as_array().unwrap();
    let pay_top: Vec<_> = top.iter().filter(|t| t["key"] == "payments").collect();
    assert_eq!(pay_top[0]["tool"], "transfer", "{body}");
    assert_eq!(pay_top[0]["calls"], 2);
    let (status, body) = json(
        &server,
        &lead,
        "/api/v1/roi?from=2026-10-01&to=2026-11-01&by=team",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body["weeks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["key"] == "crm"),
        "{body}"
    );

    // Every report is on record, the refused ones too.
    server.stop();
    let rows = support::query_dir(
        server.data_dir(),
        "SELECT actor, details FROM audit_events WHERE action = 'query.executed'",
    )
    .unwrap();
    assert!(rows.len() >= 12, "{} report records", rows.len());
    assert!(
        rows.iter()
            .any(|r| support::text(r, "actor").as_deref() == Some("fin@bank.example"))
    );

    // The CLI: the same report, and the FOCUS export as CSV and Parquet, which DuckDB reads.
    let config_file = data.path().join("prices.toml");
    std::fs::write(&config_file, &config).unwrap();
    let cli = |args: &[&str]| {
        let mut all = vec![
            os("--config"),
            config_file.as_os_str(),
            os("--data-dir"),
            data.path().as_os_str(),
        ];
        all.splice(0..0, args[..1].iter().map(|a| os(a)));
        all.extend(args[1..].iter().map(|a| os(a)));
        calltrail_ok(&all)
    };
    let out = cli(&[
        "chargeback",
        "--from",
        "2026-10-01",
        "--to",
        "2026-11-01",
        "--by",
        "team",
        "-f",
        "json",
    ]);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["totals"]["reconciles"], true);
    assert_eq!(report["rows"].as_array().unwrap().len(), 4);
    let table = cli(&["chargeback", "--from", "2026-10-01", "--to", "2026-11-01"]);
    assert!(
        table.contains("platform cost 3100.000000 EUR: allocated 3100.000000, idle 0.000000"),
        "{table}"
    );
    let roi = cli(&[
        "roi",
        "--from",
        "2026-10-01",
        "--to",
        "2026-11-01",
        "-f",
        "json",
    ]);
    let roi: Value = serde_json::from_str(&roi).unwrap();
    assert_eq!(roi["weeks"].as_array().unwrap().len(), 4, "{roi}");
    let csv = data.path().join("focus.csv");
    let parquet = data.path().join("focus.parquet");
    for file in [&csv, &parquet] {
        cli(&[
            "chargeback",
            "--from",
            "2026-10-01",
            "--to",
            "2026-11-01",
            "--focus",
            file.to_str().unwrap(),
        ]);
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("BilledCost,") || text.contains("BilledCost"),
        "{text}"
    );
    let out = support::run(
        {
            let mut c = std::process::Command::new(support::python());
            c.arg("-c")
                .arg(
                    "import duckdb,sys; print(duckdb.sql(\"SELECT count(*), sum(BilledCost), \
                 count(*) FILTER (WHERE ChargeCategory = 'Usage' AND ConsumedQuantity IS NULL) \
                 FROM read_parquet('\" + sys.argv[1] + \"')\").fetchall()[0])",
                )
                .arg(&parquet);
            c
        },
        std::time::Duration::from_secs(120),
    );
    assert!(out.status.success(), "{}", out.stderr);
    // October costs 3100 of platform plus usage: 442.858153 + 886.466386 + 1785.000091 + 10.
    assert!(
        out.stdout.contains("Decimal('3124.324630')"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.trim_end().ends_with(", 0)"),
        "usage rows carry a consumed quantity: {}",
        out.stdout
    );
}
