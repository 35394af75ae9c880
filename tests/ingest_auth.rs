//! Ingest authentication end to end: a real `calltrail serve` with bearer tokens configured.
//! Missing, wrong and revoked tokens are refused over HTTP (401) and gRPC (UNAUTHENTICATED) and
//! store nothing; the right token is stored with its source name on every row.

mod support;

use std::time::Duration;

use calltrail_collector::auth::token_sha256;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

const TOKEN: &str = "ctk_test_gateway_eu_1";
const REVOKED: &str = "ctk_test_old";

fn config() -> String {
    format!(
        "[auth]\nmode = \"required\"\n\
         [[auth.tokens]]\nsource = \"gateway-eu-1\"\nsha256 = \"{}\"\n\
         [[auth.tokens]]\nsource = \"old-gateway\"\nsha256 = \"{}\"\nrevoked = true\n",
        token_sha256(TOKEN),
        token_sha256(REVOKED)
    )
}

fn body(n: u8) -> Vec<u8> {
    let span = support::server_tool_span(
        support::trace_id(40, n),
        support::span_id(40, n, 1),
        "get_x",
        "1",
    );
    support::request("gw", vec![span]).encode_to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_known_unrevoked_tokens_get_in() {
    let server = tokio::task::spawn_blocking(|| support::Server::start_with_config(&config()))
        .await
        .unwrap();
    let http = support::http_client();
    let post = |auth: Option<&'static str>, n: u8| {
        let mut req = http
            .post(server.traces_url())
            .header("content-type", "application/x-protobuf")
            .body(body(n));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send()
    };

    let r = post(None, 1).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert!(r.text().await.unwrap().contains("missing bearer token"));
    let r = post(Some("Bearer not-a-token"), 2).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (401, "unknown bearer token".to_string())
    );
    let r = post(Some("Bearer ctk_test_old"), 3).await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.text().await.unwrap()),
        (401, "this bearer token has been revoked".to_string())
    );
    let r = post(Some("Bearer ctk_test_gateway_eu_1"), 4).await.unwrap();
    assert_eq!(r.status(), 200);

    let mut grpc = TraceServiceClient::connect(server.grpc_url())
        .await
        .unwrap();
    let req = |n: u8| {
        prost::Message::decode(body(n).as_slice())
            .map(tonic::Request::new)
            .unwrap()
    };
    let e = grpc.export(req(5)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let mut wrong = req(6);
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer ctk_test_old".parse().unwrap());
    let e = grpc.export(wrong).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::Unauthenticated,
            "this bearer token has been revoked"
        )
    );
    let mut right = req(7);
    right
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    grpc.export(right).await.unwrap();

    tokio::task::spawn_blocking(move || {
        server.wait_for_count(
            "SELECT count(*) AS n FROM tool_calls",
            2,
            Duration::from_secs(30),
        );
        let rows = server.query(
            "SELECT trace_id, ingest_source, ingest_protocol FROM tool_calls ORDER BY trace_id",
        );
        let sources: Vec<_> = rows
            .iter()
            .map(|r| support::text(r, "ingest_source"))
            .collect();
        assert_eq!(
            sources,
            [
                Some("gateway-eu-1".to_string()),
                Some("gateway-eu-1".to_string())
            ]
        );
        let traces: Vec<_> = rows
            .iter()
            .filter_map(|r| support::text(r, "trace_id"))
            .collect();
        assert_eq!(
            traces,
            [
                hex::encode(support::trace_id(40, 4)),
                hex::encode(support::trace_id(40, 7))
            ]
        );
    })
    .await
    .unwrap();
}
