//! SQL behaviour as sqllogictest files (`tests/slt/*.slt`) over the hand-countable ledger of
//! `support/ledger.rs`, written by the real store writer. Besides SQL, a statement may be
//! `CHARGEBACK from=.. to=.. by=.. granularity=..` or `ROI from=.. to=.. by=..`: the report the
//! API serves, as rows, so the `.slt` files pin the chargeback and ROI figures too. Every
//! expected value in the files was worked out by hand from the ledger's table.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "support/ledger.rs"]
mod ledger;

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use calltrail_query::chargeback::{self, ChargebackRequest, Dimension, Granularity};
use calltrail_query::price_table::ChargebackConfig;
use calltrail_query::roi::{self, RoiRequest};
use calltrail_query::{Engine, QueryLimits, Scope};
use sqllogictest::{DBOutput, DefaultColumnType};

struct Store {
    engine: Engine,
    prices: ChargebackConfig,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failed(String);

fn rows(batches: &[RecordBatch]) -> DBOutput<DefaultColumnType> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    let mut width = 0;
    for b in batches {
        width = b.num_columns();
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for i in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(i).to_string()).collect());
        }
    }
    DBOutput::Rows {
        types: vec![DefaultColumnType::Any; width],
        rows: out,
    }
}

fn params(text: &str) -> HashMap<&str, &str> {
    text.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

impl Store {
    async fn report(&self, sql: &str) -> Result<Option<RecordBatch>, Failed> {
        let p = params(sql);
        let time = |k: &str| chargeback::parse_time(p[k]).ok_or_else(|| Failed(format!("bad {k}")));
        let dim = |k: &str| Dimension::parse(p[k]).ok_or_else(|| Failed(format!("bad {k}")));
        let err = |e: calltrail_query::Error| Failed(e.to_string());
        if sql.starts_with("CHARGEBACK") {
            let request = ChargebackRequest {
                from: time("from")?,
                to: time("to")?,
                by: vec![dim("by")?],
                granularity: Granularity::parse(p["granularity"]).unwrap(),
            };
            let report = chargeback::compute(&self.engine, &self.prices, &request, &Scope::All)
                .await
                .map_err(err)?;
            // The invariant holds for every report the files ask for.
            assert_eq!(
                report.allocated_micros() + report.idle_micros(),
                report.platform_cost_micros,
                "{sql}"
            );
            return Ok(Some(report.to_batch().map_err(err)?));
        }
        if sql.starts_with("ROI") {
            let request = RoiRequest {
                from: time("from")?,
                to: time("to")?,
                by: Some(dim("by")?),
            };
            let report = roi::compute(&self.engine, &request, &Scope::All)
                .await
                .map_err(err)?;
            return Ok(Some(report.to_batch().map_err(err)?));
        }
        Ok(None)
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for Store {
    type Error = Failed;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failed> {
        let sql = sql.trim();
        if let Some(batch) = self.report(sql).await? {
            return Ok(rows(&[batch]));
        }
        let batches = self
            .engine
            .query(sql)
            .await
            .map_err(|e| Failed(e.to_string()))?;
        Ok(rows(&batches))
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass() {
    let dir = tempfile::tempdir().unwrap();
    ledger::small(dir.path()).await;
    let files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/slt"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    assert!(files.len() >= 3, "the .slt files are missing: {files:?}");
    for file in files {
        let path = dir.path().to_owned();
        let mut runner = sqllogictest::Runner::new(move || {
            let path = path.clone();
            async move {
                Ok(Store {
                    engine: Engine::open(&path, QueryLimits::default()).await.unwrap(),
                    prices: toml::from_str(ledger::PRICES).unwrap(),
                })
            }
        });
        if let Err(e) = runner.run_file_async(&file).await {
            panic!("{}: {}", file.display(), e.display(true));
        }
    }
}
