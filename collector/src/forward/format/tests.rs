//! Tests of the formatter as the delivery loop uses it: options, content types, errors, and
//! odd data in every format.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use calltrail_schemas::arrow_schema::{ChainColumns, TOOL_CALLS, tool_calls_batch, with_chain};

use super::testdata::{NASTY, StoredFindings, finding, tool_call};
use super::{FormatError, FormatKind, FormatOptions, Formatter};
use crate::forward::event::{Columns, Event, FindingRow, RecordRow};

const ALL: [FormatKind; 5] = [
    FormatKind::Ocsf,
    FormatKind::Ecs,
    FormatKind::Cef,
    FormatKind::Leef,
    FormatKind::Json,
];

#[test]
fn options_deserialize_with_defaults_and_refuse_unknown_keys() {
    let o: FormatOptions = toml::from_str("").unwrap();
    assert_eq!(o, FormatOptions::default());
    assert!(!o.include_payloads && !o.ocsf_ai_operation);
    assert_eq!(o.leef_delimiter, '\t');
    let o: FormatOptions =
        toml::from_str("include_payloads = true\nleef_delimiter = \"^\"").unwrap();
    assert!(o.include_payloads);
    assert_eq!(o.leef_delimiter, '^');
    assert!(toml::from_str::<FormatOptions>("include_payload = true").is_err());
    #[derive(serde::Deserialize)]
    struct K {
        format: FormatKind,
    }
    for kind in ALL {
        let k: K = toml::from_str(&format!("format = \"{}\"", kind.as_str())).unwrap();
        assert_eq!(k.format, kind);
    }
}

#[test]
fn validate_refuses_a_bad_leef_delimiter() {
    assert!(FormatOptions::default().validate().is_ok());
    let bad = FormatOptions {
        leef_delimiter: '=',
        ..FormatOptions::default()
    };
    assert!(matches!(
        bad.validate(),
        Err(FormatError::LeefDelimiter('='))
    ));
}

#[test]
fn content_types() {
    for kind in ALL {
        let expected = match kind {
            FormatKind::Cef | FormatKind::Leef => "text/plain",
            _ => "application/json",
        };
        let f = Formatter::new(kind, FormatOptions::default());
        assert_eq!(f.content_type(), expected);
        assert_eq!(f.kind(), kind);
    }
}

fn stored_one(call: &calltrail_schemas::ToolCall) -> RecordBatch {
    let content = tool_calls_batch(&[call]).unwrap();
    with_chain(
        &content,
        ChainColumns {
            chain_id: "c",
            first_seq: 1,
            leaf_hashes: &[[1; 32]],
            chain_hashes: &[[2; 32]],
        },
    )
    .unwrap()
}

#[test]
fn errors_leave_the_buffer_as_it_was() {
    let batch = stored_one(&tool_call());
    let columns = Columns::new("spans", &batch);
    let mut out = b"previous".to_vec();
    let err = Formatter::new(FormatKind::Json, FormatOptions::default())
        .encode(
            &Event::Record(RecordRow::new(&batch, &columns, 0)),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, FormatError::UnknownTable(t) if t == "spans"));
    assert_eq!(out, b"previous");
    let bad = FormatOptions {
        leef_delimiter: 'x',
        ..FormatOptions::default()
    };
    let columns = Columns::new(TOOL_CALLS, &batch);
    let err = Formatter::new(FormatKind::Leef, bad)
        .encode(
            &Event::Record(RecordRow::new(&batch, &columns, 0)),
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(err, FormatError::LeefDelimiter('x')));
    assert_eq!(out, b"previous");
}

#[test]
fn encode_appends_one_event_without_a_newline() {
    let batch = stored_one(&tool_call());
    let columns = Columns::new(TOOL_CALLS, &batch);
    for kind in ALL {
        let mut out = b"x".to_vec();
        Formatter::new(kind, FormatOptions::default())
            .encode(
                &Event::Record(RecordRow::new(&batch, &columns, 0)),
                &mut out,
            )
            .unwrap();
        assert!(out.starts_with(b"x") && out.len() > 100, "{kind:?}");
        assert!(!out.contains(&b'\n'), "{kind:?}");
    }
}

/// Every format, every option set: `out` must be one line, and JSON formats valid JSON.
fn assert_encodes(event: &Event<'_>) {
    for kind in ALL {
        for include_payloads in [false, true] {
            let options = FormatOptions {
                include_payloads,
                ocsf_ai_operation: include_payloads,
                ..FormatOptions::default()
            };
            let mut out = Vec::new();
            Formatter::new(kind, options)
                .encode(event, &mut out)
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            let text = String::from_utf8(out).unwrap();
            assert!(!text.contains('\n') && !text.contains('\r'), "{kind:?}");
            if Formatter::new(kind, FormatOptions::default()).content_type() == "application/json" {
                serde_json::from_str::<serde_json::Value>(&text)
                    .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            }
        }
    }
}

#[test]
fn huge_values_control_characters_and_extreme_times_encode() {
    let mut call = tool_call();
    let huge = format!("{}\u{0}\u{7f}\u{1b}[31m{NASTY}", "é".repeat(200_000));
    call.tool_name = Some(huge.clone());
    call.error_message = Some(huge.clone());
    call.arguments.content = Some(huge.clone());
    call.attribution.principal = Some(huge);
    call.start_time_ns = i64::MIN;
    call.end_time_ns = i64::MAX;
    call.observed_time_ns = 0;
    call.client_port = Some(-1);
    call.server_port = Some(1 << 40);
    call.jsonrpc_code = Some(i64::MIN);
    let batch = stored_one(&call);
    let columns = Columns::new(TOOL_CALLS, &batch);
    assert_encodes(&Event::Record(RecordRow::new(&batch, &columns, 0)));
}

#[test]
fn a_row_with_every_column_null_or_of_another_type_encodes() {
    // Not the stored schema: every value null, or of a type no accessor expects.
    let schema = Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("seq", DataType::Utf8, true),
        Field::new("leaf_hash", DataType::Int64, true),
        Field::new("start_time", DataType::Float64, true),
        Field::new("outcome", DataType::Int64, true),
        Field::new("attributes", DataType::Utf8, true),
        Field::new("details", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![None::<&str>])),
        Arc::new(StringArray::from(vec![Some("not a number")])),
        Arc::new(Int64Array::from(vec![Some(3)])),
        Arc::new(Float64Array::from(vec![Some(f64::NAN)])),
        Arc::new(Int64Array::from(vec![None])),
        Arc::new(StringArray::from(vec![Some("not a map")])),
        Arc::new(StringArray::from(vec![None::<&str>])),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    for table in ["tool_calls", "llm_calls", "audit_events"] {
        let columns = Columns::new(table, &batch);
        assert_encodes(&Event::Record(RecordRow::new(&batch, &columns, 0)));
    }
}

#[test]
fn findings_with_huge_values_control_characters_and_extreme_times_encode() {
    let mut f = finding();
    let huge = format!("{}\u{0}\u{7f}\u{1b}[31m{NASTY}", "é".repeat(200_000));
    f.explanation = huge.clone();
    f.principal = Some(huge.clone());
    f.rule = huge;
    f.window_start_ns = i64::MIN;
    f.window_end_ns = i64::MAX;
    f.detected_at_ns = 0;
    f.observed = f64::NAN;
    f.expected = Some(f64::INFINITY);
    f.score = -0.0;
    let s = StoredFindings::new(&[f]);
    assert_encodes(&Event::Finding(s.row(0)));
}

#[test]
fn a_finding_row_of_another_schema_encodes() {
    // A file from another version of the table: columns missing, or of other types.
    let schema = Arc::new(Schema::new(vec![
        Field::new("finding_id", DataType::Int64, true),
        Field::new("severity", DataType::Utf8, true),
        Field::new("observed", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![Some(7)])),
        Arc::new(StringArray::from(vec![None::<&str>])),
        Arc::new(StringArray::from(vec![Some("many")])),
    ];
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let columns = Columns::new(calltrail_schemas::finding::ANOMALIES, &batch);
    assert_encodes(&Event::Finding(FindingRow::new(&batch, &columns, 0)));
}
