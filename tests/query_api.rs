//! The query API end to end: a real server, tokens minted by `calltrail token` and by the local
//! key with bad claims, queries over HTTP. An auditor sees every row, a team lead only their
//! team's, finance none; expired, wrong-audience, wrong-key and `alg: none` tokens are refused;
//! every query is recorded in the chain as an audit event.

#![allow(clippy::unwrap_used)]

mod support;
mod tamper_support;

use base64::Engine as _;
use serde_json::Value;
use support::Server;
use tamper_support::{calltrail_ok, demo, os};

async fn post(server: &Server, token: &str, sql: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.sql_url())
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(serde_json::json!({ "sql": sql }).to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn token(server: &Server, args: &[&str]) -> String {
    let mut all = vec![os("token"), os("--data-dir"), server.data_dir().as_os_str()];
    all.extend(args.iter().map(|a| os(a)));
    calltrail_ok(&all).trim().to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn roles_scope_rows_and_bad_tokens_are_refused() {
    let mut server = Server::start();
    demo(&server, 300, 61);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let auditor = token(
        &server,
        &["--role", "auditor", "--subject", "carol@bank.example"],
    );

    // Wait until the demo's calls are queryable, then pick a team that has rows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let teams = loop {
        let (status, rows) = rt.block_on(post(
            &server,
            &auditor,
            "SELECT team, count(*) AS n FROM calls WHERE team IS NOT NULL GROUP BY team ORDER BY n DESC",
        ));
        assert_eq!(status, 200, "{rows}");
        if rows.as_array().is_some_and(|r| r.len() >= 2) {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no teams in the demo data: {rows}"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let team = teams[0]["team"].as_str().unwrap().to_owned();
    let n = teams[0]["n"].as_i64().unwrap();

    let lead = token(&server, &["--role", "team_lead", "--team", &team]);
    let (status, rows) = rt.block_on(post(
        &server,
        &lead,
        "SELECT DISTINCT team FROM calls UNION SELECT DISTINCT team FROM tool_calls",
    ));
    assert_eq!(status, 200, "{rows}");
    let seen: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["team"].as_str())
        .collect();
    assert_eq!(seen, [team.as_str()], "a team lead sees only their team");
    let (_, rows) = rt.block_on(post(&server, &lead, "SELECT count(*) AS n FROM calls"));
    assert_eq!(rows[0]["n"].as_i64().unwrap(), n, "and all of it");
    let (_, rows) = rt.block_on(post(
        &server,
        &lead,
        "SELECT count(*) AS n FROM audit_events",
    ));
    assert_eq!(rows[0]["n"], 0, "audit events are not a team's");

    let finance = token(&server, &["--role", "finance"]);
    let (status, _) = rt.block_on(post(&server, &finance, "SELECT 1"));
    assert_eq!(status, 403);
    let (status, body) = rt.block_on(post(&server, &auditor, "DROP TABLE tool_calls"));
    assert_eq!(status, 400, "{body}");

    // Real signed tokens with bad claims, from the same local key, and from another.
    let key = calltrail_query::auth::local_key(server.data_dir()).unwrap();
    let sign = |claims: Value| key.sign(&serde_json::from_value(claims).unwrap()).unwrap();
    let base = |exp: u64, aud: &str| {
        serde_json::json!({
            "iss": "calltrail-local", "aud": aud, "sub": "mallory",
            "exp": exp, "roles": ["auditor"],
        })
    };
    let expired = sign(base(now() - 3600, "calltrail-api"));
    let wrong_audience = sign(base(now() + 600, "another-api"));
    let other = calltrail_query::jwt::LocalKey::from_pkcs8(
        &calltrail_query::jwt::LocalKey::generate_pkcs8().unwrap(),
    )
    .unwrap();
    let wrong_key = other
        .sign(&serde_json::from_value(base(now() + 600, "calltrail-api")).unwrap())
        .unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!(
        "{}.{}.",
        b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(base(now() + 600, "calltrail-api").to_string())
    );
    for (what, t) in [
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("wrong key", wrong_key),
        ("alg none", none),
    ] {
        let (status, body) = rt.block_on(post(&server, &t, "SELECT 1"));
        assert_eq!(status, 401, "{what}: {body}");
    }

    // Every query is on record: who, the SQL's hash, rows returned.
    server.stop();
    let rows = support::query_dir(
        server.data_dir(),
        "SELECT actor, subject, details FROM audit_events WHERE action = 'query.executed'",
    )
    .unwrap();
    assert!(rows.len() >= 5, "{} query records", rows.len());
    assert!(
        rows.iter()
            .any(|r| support::text(r, "actor").as_deref() == Some("carol@bank.example"))
    );
    assert!(
        rows.iter()
            .all(|r| support::text(r, "subject").is_some_and(|s| s.len() == 64))
    );
    let (ok, report) = tamper_support::verify(server.data_dir(), None);
    assert!(ok, "the audit events are chained: {report}");
}
