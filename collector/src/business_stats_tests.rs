//! Unit tests of the business counters: labels, pairing, retries, the cap and its overflow,
//! and bounded memory.

use std::sync::Arc;

use calltrail_schemas::record::{Attribution, OperationClass, Payload, Source};

use super::*;

/// A server `tools/call` record of `team` on `server`, span `span` of trace `trace`.
fn call(trace: u32, span: u32, team: Option<&str>, server: Option<&str>) -> ToolCall {
    ToolCall {
        event_id: format!("server-{trace}-{span}"),
        trace_id: format!("{trace:032x}"),
        span_id: format!("{span:016x}"),
        parent_span_id: None,
        call_id: format!("{span:016x}"),
        is_request: true,
        side: Side::Server,
        span_name: "tools/call t".into(),
        start_time_ns: 0,
        end_time_ns: 1,
        observed_time_ns: 2,
        method: "tools/call".into(),
        tool_name: Some("t".into()),
        prompt_name: None,
        resource_uri: None,
        operation_class: OperationClass::Read,
        outcome: Outcome::Ok,
        error_type: None,
        jsonrpc_code: None,
        error_message: None,
        request_id: None,
        protocol_version: None,
        session_id: None,
        server_name: server.map(Into::into),
        client_name: None,
        attribution: Attribution {
            team: team.map(Into::into),
            ..Attribution::default()
        },
        network_transport: None,
        client_address: None,
        client_port: None,
        server_address: None,
        server_port: None,
        source: Arc::new(Source::default()),
        arguments: Payload::default(),
        result: Payload::default(),
        attributes: vec![],
        resource_attributes: Arc::new(vec![]),
    }
}

/// The client record of the same call as `server` (its parent span `parent`).
fn client_of(server: &mut ToolCall, parent: u32, team: Option<&str>) -> ToolCall {
    let mut c = server.clone();
    c.side = Side::Client;
    c.span_id = format!("{parent:016x}");
    c.call_id = c.span_id.clone();
    c.event_id = format!("client-{}-{parent}", c.trace_id);
    c.attribution.team = team.map(Into::into);
    server.parent_span_id = Some(c.span_id.clone());
    server.call_id = c.span_id.clone();
    c
}

fn llm(span: u32, team: Option<&str>, input: Option<i64>, output: Option<i64>) -> LlmCall {
    LlmCall {
        event_id: format!("llm-{span}"),
        trace_id: format!("{span:032x}"),
        span_id: format!("{span:016x}"),
        parent_span_id: None,
        span_name: "chat".into(),
        start_time_ns: 0,
        end_time_ns: 1,
        observed_time_ns: 2,
        operation: Some("chat".into()),
        provider: None,
        request_model: None,
        response_model: None,
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: None,
        cache_write_input_tokens: None,
        reasoning_output_tokens: None,
        is_error: false,
        error_type: None,
        attribution: Attribution {
            team: team.map(Into::into),
            ..Attribution::default()
        },
        source: Arc::new(Source::default()),
        attributes: vec![],
    }
}

fn ingest(stats: &BusinessStats, calls: &[ToolCall], llms: &[LlmCall]) {
    stats.commit(stats.tally(calls, llms));
}

fn labels(team: Option<&str>, server: Option<&str>, outcome: Outcome) -> CallLabels {
    CallLabels {
        team: team.map(Into::into),
        server: server.map(Into::into),
        outcome,
    }
}

/// The calls as a sorted list, for comparisons.
fn calls(stats: &BusinessStats) -> Vec<(CallLabels, u64)> {
    let mut s = stats.calls().series;
    s.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    s
}

#[test]
fn calls_are_counted_by_team_server_and_outcome() {
    let stats = BusinessStats::default();
    let mut denied = call(1, 3, Some("payments"), Some("crm"));
    denied.outcome = Outcome::Denied;
    let mut unknown = call(1, 4, None, Some(""));
    unknown.outcome = Outcome::ToolError;
    ingest(
        &stats,
        &[
            call(1, 1, Some("payments"), Some("crm")),
            call(1, 2, Some("payments"), Some("crm")),
            denied,
            unknown,
            call(2, 1, Some("risk"), Some("ledger")),
        ],
        &[],
    );
    assert_eq!(
        calls(&stats),
        vec![
            (labels(None, None, Outcome::ToolError), 1),
            (labels(Some("payments"), Some("crm"), Outcome::Denied), 1),
            (labels(Some("payments"), Some("crm"), Outcome::Ok), 2),
            (labels(Some("risk"), Some("ledger"), Outcome::Ok), 1),
        ]
    );
    assert_eq!(stats.calls().overflow, None);
}

#[test]
fn nothing_counts_until_committed_and_non_requests_never() {
    let stats = BusinessStats::default();
    let tally = stats.tally(&[call(1, 1, Some("a"), None)], &[]);
    assert!(stats.calls().series.is_empty());
    stats.commit(tally);
    let mut orphan = call(1, 2, Some("a"), None);
    orphan.is_request = false;
    ingest(&stats, &[orphan], &[]);
    assert_eq!(
        calls(&stats),
        vec![(labels(Some("a"), None, Outcome::Ok), 1)]
    );
}

#[test]
fn label_sets_beyond_the_cap_fold_into_the_overflow_series() {
    let stats = BusinessStats::new(2);
    ingest(
        &stats,
        &[call(1, 1, Some("a"), None), call(1, 2, Some("b"), None)],
        &[],
    );
    ingest(
        &stats,
        &[call(1, 3, Some("c"), None), call(1, 4, Some("d"), None)],
        &[],
    );
    // Tracked sets keep counting after the cap is reached.
    ingest(
        &stats,
        &[call(1, 5, Some("a"), None), call(1, 6, Some("c"), None)],
        &[],
    );
    let snapshot = stats.calls();
    assert_eq!(
        calls(&stats),
        vec![
            (labels(Some("a"), None, Outcome::Ok), 2),
            (labels(Some("b"), None, Outcome::Ok), 1),
        ]
    );
    assert_eq!(snapshot.overflow, Some(3));
    // Every call is in exactly one series.
    let total: u64 = snapshot.series.iter().map(|s| s.1).sum::<u64>() + 3;
    assert_eq!(total, 6);
}

#[test]
fn hostile_label_values_do_not_grow_memory() {
    let stats = BusinessStats::new(3);
    for batch in 0..100u32 {
        let records: Vec<ToolCall> = (0..100u32)
            .map(|i| {
                let team = format!("team-{batch}-{i}");
                call(batch, i, Some(&team), Some(&team))
            })
            .collect();
        let llms: Vec<LlmCall> = (0..10u32)
            .map(|i| {
                llm(
                    batch * 10 + i,
                    Some(&format!("t{batch}-{i}")),
                    Some(1),
                    Some(1),
                )
            })
            .collect();
        ingest(&stats, &records, &llms);
    }
    assert_eq!(stats.calls().series.len(), 3);
    assert_eq!(stats.calls().overflow, Some(10_000 - 3));
    // Input and output of one team are two label sets.
    assert_eq!(stats.tokens().series.len(), 3);
    assert_eq!(stats.tokens().overflow, Some(2_000 - 3));
    let inner = stats.lock();
    assert!(inner.calls.counts.len() <= 3 && inner.tokens.counts.len() <= 3);
}

#[test]
fn the_pairing_window_is_bounded() {
    let stats = BusinessStats::with_window(10, 64);
    for span in 0..1_000u32 {
        ingest(&stats, &[call(1, span, Some("a"), None)], &[]);
    }
    let inner = stats.lock();
    assert!(inner.window.seen.len() <= 64 && inner.window.order.len() <= 64);
    assert_eq!(inner.window.seen.len(), inner.window.order.len());
}

#[test]
fn long_label_values_are_cut_at_a_character_boundary() {
    let stats = BusinessStats::default();
    let long = "é".repeat(100); // 200 bytes
    ingest(
        &stats,
        &[call(1, 1, Some(&long), Some(&"s".repeat(500)))],
        &[],
    );
    let (l, _) = &stats.calls().series[0];
    let team = l.team.as_deref().unwrap();
    assert_eq!(team, "é".repeat(64));
    assert_eq!(l.server.as_deref().unwrap().len(), MAX_LABEL_BYTES);
}

#[test]
fn a_call_seen_from_both_sides_counts_once() {
    // Same request: the server's labels (it saw the outcome).
    let stats = BusinessStats::default();
    let mut server = call(1, 10, None, Some("crm"));
    server.outcome = Outcome::ToolError;
    let client = client_of(&mut server, 9, Some("payments"));
    ingest(&stats, &[client, server], &[]);
    assert_eq!(
        calls(&stats),
        vec![(labels(None, Some("crm"), Outcome::ToolError), 1)]
    );

    // Separate requests, either order: the first record's labels.
    for client_first in [true, false] {
        let stats = BusinessStats::default();
        let mut server = call(2, 10, Some("risk"), Some("crm"));
        let client = client_of(&mut server, 9, Some("risk"));
        let (a, b) = if client_first {
            (client, server)
        } else {
            (server, client)
        };
        ingest(&stats, std::slice::from_ref(&a), &[]);
        ingest(&stats, std::slice::from_ref(&b), &[]);
        // Retried exports of both.
        ingest(&stats, &[a, b], &[]);
        assert_eq!(
            calls(&stats),
            vec![(labels(Some("risk"), Some("crm"), Outcome::Ok), 1)]
        );
    }
}

#[test]
fn sibling_servers_count_each_and_client_pairs_fold() {
    let stats = BusinessStats::default();
    // A client counted first, then two server spans sharing it as parent: two calls, as
    // the `calls` view counts them.
    let mut s1 = call(3, 11, Some("a"), Some("crm"));
    let client = client_of(&mut s1, 9, Some("a"));
    let mut s2 = call(3, 12, Some("a"), Some("crm"));
    s2.parent_span_id = s1.parent_span_id.clone();
    s2.call_id = s1.call_id.clone();
    ingest(&stats, &[client], &[]);
    ingest(&stats, &[s1], &[]);
    ingest(&stats, &[s2.clone()], &[]);
    ingest(&stats, &[s2], &[]); // a retry
    // FastMCP: a wrapper and its wire span share a call id: one call.
    let mut wire = call(4, 21, Some("a"), Some("crm"));
    wire.side = Side::Client;
    let mut wrapper = wire.clone();
    wrapper.span_id = format!("{:016x}", 20);
    wrapper.event_id = "wrapper".into();
    ingest(&stats, &[wrapper, wire], &[]);
    assert_eq!(
        calls(&stats),
        vec![(labels(Some("a"), Some("crm"), Outcome::Ok), 3)]
    );
}

#[test]
fn tokens_are_summed_by_team_and_type() {
    let stats = BusinessStats::default();
    let first = llm(1, Some("payments"), Some(100), Some(20));
    ingest(
        &stats,
        &[],
        &[
            first.clone(),
            llm(2, Some("payments"), Some(50), None),
            llm(3, None, Some(7), Some(3)),
            llm(4, Some("risk"), Some(-5), Some(0)), // nonsense and nothing: not counted
        ],
    );
    ingest(&stats, &[], &[first]); // a retried export
    let mut tokens = stats.tokens().series;
    tokens.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    let t = |team: Option<&str>, token_type| TokenLabels {
        team: team.map(Into::into),
        token_type,
    };
    assert_eq!(
        tokens,
        vec![
            (t(None, TokenType::Input), 7),
            (t(None, TokenType::Output), 3),
            (t(Some("payments"), TokenType::Input), 150),
            (t(Some("payments"), TokenType::Output), 20),
        ]
    );
    assert_eq!(TokenType::Input.as_str(), "input");
    assert_eq!(TokenType::Output.as_str(), "output");
}
