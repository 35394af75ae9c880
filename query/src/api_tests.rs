//! The router through `oneshot`: tokens decide who gets in and which rows they see; formats by
//! `Accept`; refusals carry the right status; every query is recorded.

use std::sync::Mutex;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;
use crate::jwt::{Claims, LocalKey, Verifier};

async fn state(records: Arc<Mutex<Vec<QueryRecord>>>) -> (ApiState, LocalKey, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), crate::QueryLimits::default())
        .await
        .unwrap();
    let key = LocalKey::from_pkcs8(&LocalKey::generate_pkcs8().unwrap()).unwrap();
    let auth = AuthConfig::default();
    let verifier = Verifier::new(&key.jwks(), auth.expectations()).unwrap();
    let hook: AuditHook = Arc::new(move |r| records.lock().unwrap().push(r));
    (
        ApiState {
            engine: Arc::new(engine),
            verifier: Arc::new(verifier.into()),
            auth: Arc::new(auth),
            audit: Some(hook),
            chargeback: Arc::new(crate::price_table::ChargebackConfig::default()),
            operations: None,
        },
        key,
        dir,
    )
}

fn token(key: &LocalKey, roles: &[&str], exp_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims: Claims = serde_json::from_value(serde_json::json!({
        "iss": crate::auth::LOCAL_ISSUER,
        "aud": crate::auth::DEFAULT_AUDIENCE,
        "sub": "alice@bank.example",
        "exp": now + exp_in,
        "roles": roles,
        "teams": ["payments"],
    }))
    .unwrap();
    key.sign(&claims).unwrap()
}

async fn call(
    state: &ApiState,
    token: Option<&str>,
    accept: &str,
    body: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::post("/api/v1/sql").header(header::ACCEPT, accept);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let resp = router(state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, bytes)
}

#[tokio::test]
async fn tokens_roles_formats_and_refusals() {
    let records = Arc::new(Mutex::new(Vec::new()));
    let (state, key, _dir) = state(Arc::clone(&records)).await;
    let q = r#"{"sql": "SELECT 1 AS one"}"#;
    let auditor = token(&key, &["auditor"], 600);

    let (status, headers, body) = call(&state, Some(&auditor), "application/json", q).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows[0]["one"], 1);

    let (status, headers, body) = call(&state, Some(&auditor), "text/csv", q).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert_eq!(String::from_utf8(body).unwrap(), "one\n1\n");

    let (status, _, body) = call(
        &state,
        Some(&auditor),
        "application/vnd.apache.arrow.stream",
        q,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let batches: Vec<_> =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    assert_eq!(batches[0].num_rows(), 1);

    let (status, _, _) = call(&state, Some(&auditor), "image/png", q).await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);

    // No token, a bad one, an expired one: 401 with the Bearer challenge.
    for t in [
        None,
        Some("not.a.token"),
        Some(token(&key, &["auditor"], -3600).as_str()),
    ] {
        let (status, headers, _) = call(&state, t, "application/json", q).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{t:?}");
        assert!(headers.contains_key(header::WWW_AUTHENTICATE));
    }
    // A token from another key.
    let other = LocalKey::from_pkcs8(&LocalKey::generate_pkcs8().unwrap()).unwrap();
    let (status, _, _) = call(
        &state,
        Some(&token(&other, &["auditor"], 600)),
        "application/json",
        q,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // No known role; finance through SQL.
    let (status, _, _) = call(
        &state,
        Some(&token(&key, &["root"], 600)),
        "application/json",
        q,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &state,
        Some(&token(&key, &["finance"], 600)),
        "application/json",
        q,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Writes are a 400 naming the problem; a bad body too.
    let (status, _, body) = call(
        &state,
        Some(&auditor),
        "application/json",
        r#"{"sql": "DROP TABLE tool_calls"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("error"));
    let (status, _, _) = call(&state, Some(&auditor), "application/json", "SELECT 1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A body over the size bound.
    let huge = format!(r#"{{"sql": "SELECT '{}'"}}"#, "x".repeat(200_000));
    let (status, _, _) = call(&state, Some(&auditor), "application/json", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let records = records.lock().unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.outcome == "ok" && r.rows == Some(1))
    );
    assert!(
        records
            .iter()
            .any(|r| r.outcome == "refused" && r.role == "finance")
    );
    assert!(
        records
            .iter()
            .all(|r| r.sql_sha256.len() == 64 && r.subject == "alice@bank.example")
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_route() {
    let (state, _, _dir) = state(Arc::default()).await;
    let resp = router(state)
        .oneshot(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/v1/sql"]["post"].is_object());
    for route in ["/api/v1/charts", "/api/v1/verify", "/api/v1/exports"] {
        assert!(doc["paths"][route]["post"].is_object(), "{route}");
    }
    assert!(doc["paths"]["/api/v1/integrity"]["get"].is_object());
    for route in [
        "/api/v1/anomalies",
        "/api/v1/baselines",
        "/api/v1/calls",
        "/api/v1/chargeback/drilldown",
        "/api/v1/chargeback/focus",
    ] {
        assert!(
            doc["paths"][route]["get"]["parameters"].is_array(),
            "{route}"
        );
    }
    for report in ["/api/v1/chargeback", "/api/v1/roi"] {
        let params: Vec<_> = doc["paths"][report]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert!(
            params.starts_with(&["from", "to", "by"]),
            "{report}: {params:?}"
        );
    }
}

async fn get(state: &ApiState, token: &str, uri: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {token}"));
    let resp = router(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test]
async fn findings_are_scoped_like_rows_and_finance_reads_none() {
    let (state, key, dir) = state(Arc::default()).await;
    let day = 1_789_351_200_000_000_000; // 2026-09-14T02:00Z
    let findings = ["payments", "crm"].map(|team| {
        let mut f = crate::detect::draft::finding("D1", "volume_spike", "user", team, day, day + 1);
        f.team = Some(team.to_string());
        f.explanation = format!("someone in {team} made 99 calls");
        f
    });
    crate::detect::store::append(dir.path(), findings.to_vec(), day).unwrap();
    let uri = "/api/v1/anomalies?from=2026-09-14&to=2026-09-15";
    let teams = |v: &serde_json::Value| -> Vec<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["team"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, body) = get(&state, &token(&key, &["auditor"], 60), uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut all = teams(&body);
    all.sort();
    assert_eq!(all, ["crm", "payments"]);
    let (status, body) = get(&state, &token(&key, &["team_lead"], 60), uri).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(teams(&body), ["payments"]);
    let (status, _) = get(&state, &token(&key, &["finance"], 60), uri).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = get(
        &state,
        &token(&key, &["auditor"], 60),
        "/api/v1/anomalies?from=2026-09-14&to=2026-09-15&severity=high",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(teams(&body).len(), 0, "both findings are medium");
    let (status, body) = get(
        &state,
        &token(&key, &["auditor"], 60),
        "/api/v1/baselines?entity=user&id=nobody",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

async fn send(
    state: &ApiState,
    req: axum::http::request::Builder,
    body: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = router(state.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

#[tokio::test]
async fn the_ui_is_served_from_the_binary_under_a_same_origin_policy() {
    let (state, _, _dir) = state(Arc::default()).await;
    for (uri, kind) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let (status, headers, body) = send(&state, Request::get(uri), "").await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{uri}"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'"), "{uri}: {csp}");
        assert!(!body.is_empty(), "{uri}");
        // Nothing the page loads comes from another host.
        let text = String::from_utf8(body).unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{uri}"
        );
    }
    let (status, headers, _) = send(&state, Request::get("/"), "").await;
    assert!(status.is_redirection());
    assert_eq!(headers[header::LOCATION], "/ui/");
}

#[tokio::test]
async fn charts_are_drawn_for_any_role_and_bad_bodies_are_named() {
    let (state, key, _dir) = state(Arc::default()).await;
    let body = r#"{"kind":"bars","title":"Calls","y_label":"calls","points":[{"label":"w1","value":3},{"label":"w2","value":5}]}"#;
    let (status, _, _) = send(&state, Request::post("/api/v1/charts"), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let finance = token(&key, &["finance"], 600);
    let post = || {
        Request::post("/api/v1/charts").header(header::AUTHORIZATION, format!("Bearer {finance}"))
    };
    let (status, headers, svg) = send(&state, post(), body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert_eq!(headers["x-calltrail-points"], "2");
    assert!(String::from_utf8(svg).unwrap().contains("w2"));
    let (status, _, err) = send(&state, post(), r#"{"kind":"pie"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&err).contains("the body must be"));
}

#[tokio::test]
async fn audit_search_integrity_and_exports_follow_the_roles() {
    let (state, key, _dir) = state(Arc::default()).await;
    let day = "from=2026-01-01&to=2026-01-02";
    let auditor = token(&key, &["auditor"], 600);
    let (status, body) = get(&state, &auditor, &format!("/api/v1/calls?{day}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], serde_json::json!([]));
    let (status, body) = get(&state, &auditor, &format!("/api/v1/calls?{day}&limit=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("limit"));
    let finance = token(&key, &["finance"], 600);
    let (status, _) = get(&state, &finance, &format!("/api/v1/calls?{day}")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Integrity is the compliance officer's view: team leads and finance are refused; a
    // server without operations says so.
    let lead = token(&key, &["team_lead"], 600);
    for t in [&lead, &finance] {
        let (status, _) = get(&state, t, "/api/v1/integrity").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, body) = get(&state, &auditor, "/api/v1/integrity").await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
    let (status, _) = get(&state, &lead, "/api/v1/exports").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
