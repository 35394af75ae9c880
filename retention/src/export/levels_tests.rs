//! The in-memory tree gives exactly the heads and audit paths `merkle` gives, across deleted
//! runs of leaves too; and the CSV and manifest texts read back what was written.

#![allow(clippy::unwrap_used)]

use super::levels::LevelsBuilder;
use super::manifest::{self, Manifest};
use super::text::{CsvReader, csv_line};
use super::*;
use crate::merkle::{self, Hash};
use crate::test_support::leaves;
use crate::tree::{TreeError, range_levels};

#[test]
fn levels_give_the_heads_and_audit_paths_merkle_gives() {
    for n in 1..=70u64 {
        let all = leaves(n);
        let mut b = LevelsBuilder::new(n).unwrap();
        for l in &all {
            b.push(*l);
        }
        let tree = b.finish().unwrap();
        assert_eq!(tree.root().unwrap(), merkle::root(&all), "head of {n}");
        for i in 0..n {
            assert_eq!(
                tree.inclusion(i).unwrap(),
                merkle::inclusion_proof(i as usize, &all).unwrap(),
                "path of {i} in {n}"
            );
        }
        assert!(tree.inclusion(n).is_err());
    }
    let mut b = LevelsBuilder::new(3).unwrap();
    b.push([1; 32]);
    assert!(matches!(b.finish(), Err(TreeError::TooFewLeaves { .. })));
}

#[test]
fn levels_cross_deleted_runs_and_refuse_proofs_inside_them() {
    let n = 37u64;
    let all = leaves(n);
    for (a, b) in [(0, 5), (3, 9), (8, 16), (20, 37), (36, 37), (10, 11)] {
        let range: Vec<Hash> = {
            let mut pos = a;
            range_levels(a, b)
                .into_iter()
                .map(|l| {
                    let h = merkle::root(&all[pos as usize..(pos + (1 << l)) as usize]);
                    pos += 1 << l;
                    h
                })
                .collect()
        };
        let mut builder = LevelsBuilder::new(n).unwrap();
        for l in &all[..a as usize] {
            builder.push(*l);
        }
        assert!(builder.push_range(a + 1, b, &range).is_err(), "misplaced");
        assert!(builder.push_range(a, b, &range[1..]).is_err(), "too short");
        builder.push_range(a, b, &range).unwrap();
        for l in &all[b as usize..] {
            builder.push(*l);
        }
        let tree = builder.finish().unwrap();
        assert_eq!(tree.root().unwrap(), merkle::root(&all), "[{a}, {b})");
        // A leaf inside a deleted run is known only when the run's compact range has it alone.
        let mut inside = Vec::new();
        let mut pos = a;
        for l in range_levels(a, b) {
            if l > 0 {
                inside.extend(pos..pos + (1 << l));
            }
            pos += 1 << l;
        }
        for i in 0..n {
            let got = tree.inclusion(i);
            if inside.contains(&i) {
                assert_eq!(
                    got,
                    Err(TreeError::InsideDeleted { start: a, end: b }),
                    "{i}"
                );
            } else {
                assert_eq!(
                    got.unwrap(),
                    merkle::inclusion_proof(i as usize, &all).unwrap()
                );
            }
        }
    }
}

#[test]
fn csv_reads_back_what_it_writes() {
    let rows: Vec<Vec<Option<&str>>> = vec![
        vec![Some("a"), None, Some(""), Some("x,y")],
        vec![Some("say \"hi\""), Some("two\r\nlines"), None, None],
        vec![None, None, None, Some("")],
    ];
    let text: String = rows.iter().map(|r| csv_line(r)).collect();
    let mut reader = CsvReader::new(text.as_bytes());
    for (i, want) in rows.iter().enumerate() {
        let (_, got) = reader.next_record().unwrap().unwrap();
        let want: Vec<Option<String>> = want.iter().map(|f| f.map(str::to_owned)).collect();
        assert_eq!(got, want, "row {i}");
    }
    assert!(reader.next_record().is_none());
    let mut bad = CsvReader::new("a,\"open\n".as_bytes());
    assert!(bad.next_record().unwrap().is_err());
    let mut bad = CsvReader::new("a,b\"c\n".as_bytes());
    assert!(bad.next_record().unwrap().is_err());
}

#[test]
fn manifest_text_round_trips() {
    let m = Manifest {
        created: "2026-11-23T17:00:00Z".into(),
        from: "2026-11-01T00:00:00Z".into(),
        to: "2026-12-01T00:00:00Z".into(),
        filters: vec![("tenant".into(), "Acme Bank".into())],
        format: Format::Csv,
        records: 3,
        tables: vec![("tool_calls".into(), 3)],
        chains: vec![manifest::ChainEntry {
            chain_id: "c".into(),
            tree_size: 9,
            records: 3,
        }],
        files: vec![manifest::FileEntry {
            path: "records/tool_calls.parquet".into(),
            size: 10,
            sha256: [7; 32],
        }],
    };
    assert_eq!(Manifest::parse(&m.to_text()).unwrap(), m);
    let e = Manifest::parse(&m.to_text().replace("records 3", "records three")).unwrap_err();
    assert!(e.contains("not a number"), "{e}");
    assert!(Manifest::parse("something else\n").is_err());
}
