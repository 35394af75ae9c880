//! The encoding's bytes are pinned by hand-written and fixture vectors; it does not depend on
//! column order, string representation or map entry order; its decoder accepts exactly what the
//! encoder produces.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, DictionaryArray, Float64Array, Int64Array, LargeStringArray,
    MapBuilder, MapFieldNames, StringArray, StringBuilder, StringViewArray,
    TimestampNanosecondArray, UInt16Array,
};
use arrow::datatypes::Int32Type;

use super::*;
use crate::arrow_schema::{self, ChainColumns, LLM_CALLS, TOOL_CALLS};
use crate::codec;

fn map(entries: &[&[(&str, Option<&str>)]]) -> ArrayRef {
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    let mut b = MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new());
    for row in entries {
        for (k, v) in *row {
            b.keys().append_value(k);
            b.values().append_option(*v);
        }
        b.append(true).unwrap();
    }
    Arc::new(b.finish())
}

/// One row of every type, with a null column (`nothing`).
fn small(columns_reversed: bool) -> RecordBatch {
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("ok", Arc::new(BooleanArray::from(vec![true]))),
        ("n", Arc::new(UInt16Array::from(vec![2u16]))),
        ("f", Arc::new(Float64Array::from(vec![-0.0]))),
        (
            "t",
            Arc::new(TimestampNanosecondArray::from(vec![1_000]).with_timezone("UTC")),
        ),
        ("s", Arc::new(StringArray::from(vec!["é"]))),
        ("nothing", Arc::new(Int64Array::from(vec![None::<i64>]))),
        ("m", map(&[&[("b", None), ("a", Some("x"))]])),
        ("seq", Arc::new(Int64Array::from(vec![99]))),
    ];
    if columns_reversed {
        cols.reverse();
    }
    RecordBatch::try_from_iter(cols).unwrap()
}

#[test]
fn bytes_of_a_small_record_are_as_specified() {
    let enc = RowEncoder::new("tool_calls", &small(false)).unwrap();
    let mut out = Vec::new();
    enc.encode(0, &mut out);
    let expected = concat!(
        "43545231", // "CTR1"
        "0000000a",
        "746f6f6c5f63616c6c73", // str "tool_calls"
        "00000006",             // 6 non-null fields ("nothing" and "seq" are not)
        "00000001",
        "66",
        "03",
        "0000000000000000", // f: -0.0 written as 0.0
        "00000001",
        "6d",
        "06",
        "00000002", // m: a map of two entries, sorted by key
        "00000001",
        "61",
        "05",
        "00000001",
        "78", //   "a" -> "x"
        "00000001",
        "62",
        "00", //   "b" -> null
        "00000001",
        "6e",
        "02",
        "0000000000000002", // n: integer 2
        "00000002",
        "6f6b",
        "01",
        "01", // ok: true
        "00000001",
        "73",
        "05",
        "00000002",
        "c3a9", // s: "é"
        "00000001",
        "74",
        "04",
        "00000000000003e8", // t: 1000 ns
    );
    assert_eq!(hex::encode(&out), expected);
    assert_eq!(enc.leaf_hash(0, &mut Vec::new()), leaf_hash(&out));
}

#[test]
fn column_order_string_types_and_map_order_do_not_change_the_bytes() {
    let base = RowEncoder::new("t", &small(false)).unwrap().leaf_hashes(1);
    assert_eq!(
        base,
        RowEncoder::new("t", &small(true)).unwrap().leaf_hashes(1)
    );

    let strings: [ArrayRef; 4] = [
        Arc::new(StringArray::from(vec!["é"])),
        Arc::new(LargeStringArray::from(vec!["é"])),
        Arc::new(StringViewArray::from(vec!["é"])),
        Arc::new(DictionaryArray::<Int32Type>::from_iter(["é"])),
    ];
    let mut seen = Vec::new();
    for s in strings {
        let mut batch = small(false);
        let i = batch.schema().index_of("s").unwrap();
        batch.remove_column(i);
        let mut cols: Vec<(String, ArrayRef)> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .zip(batch.columns().iter().cloned())
            .collect();
        cols.push(("s".into(), s));
        let b = RecordBatch::try_from_iter(cols).unwrap();
        seen.push(RowEncoder::new("t", &b).unwrap().leaf_hashes(1));
    }
    assert!(
        seen.iter().all(|h| *h == base),
        "every string representation hashes alike"
    );

    let a = RecordBatch::try_from_iter([("m", map(&[&[("a", Some("1")), ("b", None)]]))]).unwrap();
    let b = RecordBatch::try_from_iter([("m", map(&[&[("b", None), ("a", Some("1"))]]))]).unwrap();
    assert_eq!(
        RowEncoder::new("t", &a).unwrap().leaf_hashes(1),
        RowEncoder::new("t", &b).unwrap().leaf_hashes(1)
    );
}

#[test]
fn values_that_differ_hash_differently() {
    let one = |col: ArrayRef| {
        let b = RecordBatch::try_from_iter([("x", col)]).unwrap();
        RowEncoder::new("t", &b).unwrap().leaf_hashes(1)[0]
    };
    let hashes = [
        one(Arc::new(StringArray::from(vec![""]))),
        one(Arc::new(StringArray::from(vec![None::<&str>]))),
        one(Arc::new(Int64Array::from(vec![0]))),
        one(Arc::new(Float64Array::from(vec![0.0]))),
        one(Arc::new(TimestampNanosecondArray::from(vec![0]))),
        one(Arc::new(BooleanArray::from(vec![false]))),
        one(map(&[&[]])),
    ];
    for (i, a) in hashes.iter().enumerate() {
        for b in &hashes[i + 1..] {
            assert_ne!(
                a, b,
                "an empty string, a null, 0, 0.0, epoch, false and {{}} differ"
            );
        }
    }
    assert_eq!(
        one(Arc::new(Float64Array::from(vec![f64::NAN]))),
        one(Arc::new(Float64Array::from(vec![-f64::NAN]))),
        "every NaN is one NaN"
    );
}

#[test]
fn unsupported_types_are_named() {
    let b = RecordBatch::try_from_iter([(
        "blob",
        Arc::new(arrow::array::BinaryArray::from(vec![&b"x"[..]])) as ArrayRef,
    )])
    .unwrap();
    let e = RowEncoder::new("t", &b).unwrap_err();
    assert!(e.to_string().contains("blob"), "{e}");
}

#[test]
fn decode_inverts_encode_and_rejects_every_corruption() {
    let enc = RowEncoder::new("tool_calls", &small(false)).unwrap();
    let mut bytes = Vec::new();
    enc.encode(0, &mut bytes);
    let rec = decode(&bytes).unwrap();
    assert_eq!(rec.table, "tool_calls");
    assert_eq!(rec.get("n"), Some(&Value::Int(2)));
    assert_eq!(
        rec.get("m"),
        Some(&Value::Map(vec![
            ("a".into(), Some("x".into())),
            ("b".into(), None)
        ]))
    );
    assert_eq!(rec.to_json()["fields"]["s"], "é");

    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(decode(&trailing).is_err());
    let mut magic = bytes.clone();
    magic[3] = b'2';
    assert!(decode(&magic).is_err());
    // Swap the names of fields "n" and "s" (one byte each): now out of order.
    let mut order = bytes.clone();
    let n_at = bytes
        .windows(6)
        .position(|w| w == [0, 0, 0, 1, b'n', 2])
        .unwrap();
    order[n_at + 4] = b'z';
    assert!(decode(&order).is_err(), "fields must ascend");
    let mut tag = bytes.clone();
    tag[n_at + 5] = 0x7f;
    assert!(decode(&tag).is_err(), "unknown tag");
    let mut float = bytes.clone();
    let f_at = bytes
        .windows(6)
        .position(|w| w == [0, 0, 0, 1, b'f', 3])
        .unwrap();
    float[f_at + 6] = 0x80; // -0.0 is not canonical
    assert!(decode(&float).is_err());
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct Vector {
    name: String,
    table: String,
    record: serde_json::Value,
    canonical_hex: String,
    leaf_hash: String,
}

fn fixture_vectors() -> Vec<Vector> {
    let tools = codec::tests::sample_records();
    let tool = &tools[0];
    let llm = codec::tests::llm_call();
    let mut out = Vec::new();
    let batches = [
        (
            "tool call from a captured MCP SDK span",
            TOOL_CALLS,
            arrow_schema::tool_calls_batch(&[tool]).unwrap(),
        ),
        (
            "llm call with nulls, unicode and extreme times",
            LLM_CALLS,
            arrow_schema::llm_calls_batch(&[&llm]).unwrap(),
        ),
    ];
    for (name, table, batch) in batches {
        // The stored batch (with chain columns) encodes exactly like the content batch.
        let chained = arrow_schema::with_chain(
            &batch,
            ChainColumns {
                chain_id: "c",
                first_seq: 7,
                leaf_hashes: &[[1; 32]],
                chain_hashes: &[[2; 32]],
            },
        )
        .unwrap();
        let enc = RowEncoder::new(table, &chained).unwrap();
        let mut bytes = Vec::new();
        enc.encode(0, &mut bytes);
        assert_eq!(
            RowEncoder::new(table, &batch).unwrap().leaf_hashes(1)[0],
            leaf_hash(&bytes)
        );
        out.push(Vector {
            name: name.into(),
            table: table.into(),
            record: decode(&bytes).unwrap().to_json(),
            canonical_hex: hex::encode(&bytes),
            leaf_hash: hex::encode(leaf_hash(&bytes)),
        });
    }
    out
}

/// The fixture another implementation checks itself against; `CALLTRAIL_BLESS=1` rewrites it
/// after a deliberate change (which must also bump the encoding version).
#[test]
fn fixture_vectors_match_and_the_spec_cites_them() {
    let path = format!(
        "{}/../tests/fixtures/chain/vectors.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let computed = fixture_vectors();
    if std::env::var_os("CALLTRAIL_BLESS").is_some() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Vec<Vector> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        stored, computed,
        "the encoding changed: see the test's doc comment"
    );
    let spec = std::fs::read_to_string(format!(
        "{}/../docs/specs/chain.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    for v in &stored {
        assert!(
            spec.contains(&v.leaf_hash),
            "docs/specs/chain.md cites {}",
            v.leaf_hash
        );
    }
}
