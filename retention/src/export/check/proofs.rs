//! The proofs: each matched to its record and walked from the record's recomputed leaf hash to
//! its chain's signed head, on every core; and the records no proof names.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use super::{Check, Checker};
use crate::checkpoint::Checkpoint;
use crate::merkle::{self, Hash};

impl Checker<'_> {
    /// Every proof of a chain: its record is in the bundle, and its path leads from the
    /// record's recomputed leaf hash to the chain's signed head.
    pub(super) fn proofs_file(&mut self, chain_id: &str, progress: &mut dyn FnMut(u64)) {
        let file = format!("proofs/{chain_id}.parquet");
        let Some(batches) = self.batches(&file) else {
            return;
        };
        let checkpoint = self.checkpoints.get(chain_id).cloned();
        let mut verified = 0u64;
        for batch in batches {
            let result = batch.map_err(|e| e.to_string()).and_then(|b| {
                self.proof_batch(chain_id, &file, &b, checkpoint.as_ref())
                    .map(|n| (n, b.num_rows()))
            });
            match result {
                Ok((n, rows)) => {
                    verified += n;
                    progress(rows as u64);
                }
                Err(e) => {
                    self.find(Check::Unreadable, Some(&file), None, e);
                    break;
                }
            }
        }
        self.report.proofs_verified += verified;
        if let Some(c) = self
            .report
            .chains
            .iter_mut()
            .find(|c| c.chain_id == chain_id)
        {
            c.proofs_verified = verified;
        }
    }

    fn proof_batch(
        &mut self,
        chain_id: &str,
        file: &str,
        batch: &RecordBatch,
        checkpoint: Option<&Checkpoint>,
    ) -> std::result::Result<u64, String> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or(format!("no {name} column"))
        };
        let chains = col("chain_id")?
            .as_string_opt::<i32>()
            .ok_or("chain_id is not text")?;
        let seqs = col("seq")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("seq is not Int64")?;
        let tables = col("table_name")?
            .as_string_opt::<i32>()
            .ok_or("table_name is not text")?;
        let ids = col("event_id")?
            .as_string_opt::<i32>()
            .ok_or("event_id is not text")?;
        let leaves = col("leaf_hash")?
            .as_fixed_size_binary_opt()
            .ok_or("leaf_hash is not binary")?;
        let sizes = col("tree_size")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("tree_size is not Int64")?;
        let paths = col("audit_path")?
            .as_list_opt::<i32>()
            .ok_or("audit_path is not a list")?;
        let chain = self.intern(chain_id);
        // Looked up in order, then the audit paths walked on every core.
        let mut jobs: Vec<(usize, u64, Hash, Vec<Hash>)> = Vec::new();
        for row in 0..batch.num_rows() {
            let (event_id, seq) = (ids.value(row), seqs.value(row) as u64);
            let record = Some((event_id, chain_id, seq));
            if chains.value(row) != chain_id {
                self.find(
                    Check::Proof,
                    Some(file),
                    record,
                    format!("the proof is for chain {}", chains.value(row)),
                );
                continue;
            }
            let Some(found) = self.records.get_mut(&(chain, seq)) else {
                self.find(
                    Check::RecordMissing,
                    Some(file),
                    record,
                    "a proof for a record the bundle does not hold: it was removed",
                );
                continue;
            };
            found.proven = true;
            let (leaf, found_id, found_table) = (found.leaf, found.event_id.clone(), found.table);
            if &*found_id != event_id
                || self.name(found_table) != tables.value(row)
                || leaves.value(row) != leaf.as_slice()
            {
                let detail = format!(
                    "the proof is for {} in {}, the bundle holds {} in {} at this seq, or its leaf hash differs",
                    event_id,
                    tables.value(row),
                    found_id,
                    self.name(found_table)
                );
                self.find(Check::Proof, Some(file), record, detail);
                continue;
            }
            let Some(cp) = checkpoint else {
                self.find(
                    Check::Proof,
                    Some(file),
                    record,
                    "the chain has no valid checkpoint to check it against",
                );
                continue;
            };
            let size = sizes.value(row) as u64;
            if size != cp.size {
                self.find(
                    Check::Proof,
                    Some(file),
                    record,
                    format!(
                        "the proof is for tree size {size}, the checkpoint's is {}",
                        cp.size
                    ),
                );
                continue;
            }
            let nodes = paths.value(row);
            let Some(nodes) = nodes.as_fixed_size_binary_opt() else {
                return Err("audit_path does not hold binary hashes".into());
            };
            let path: Option<Vec<Hash>> = (0..nodes.len())
                .map(|i| nodes.value(i).try_into().ok())
                .collect();
            let Some(path) = path else {
                self.find(
                    Check::Proof,
                    Some(file),
                    record,
                    "the audit path holds something that is not a 32-byte hash",
                );
                continue;
            };
            jobs.push((row, seq, leaf, path));
        }
        let Some(cp) = checkpoint else {
            return Ok(0);
        };
        let failed = walk_paths(&jobs, cp);
        for (row, e) in &failed {
            let (event_id, seq) = (ids.value(*row), seqs.value(*row) as u64);
            self.find(
                Check::Proof,
                Some(file),
                Some((event_id, chain_id, seq)),
                format!("the audit path does not lead from the record's leaf hash to the signed head: {e}"),
            );
        }
        Ok((jobs.len() - failed.len()) as u64)
    }

    /// Records no proof named.
    pub(super) fn unproven(&mut self) {
        let mut missing: Vec<(String, u64, String, String)> = self
            .records
            .iter()
            .filter(|(_, r)| !r.proven)
            .map(|((c, s), r)| {
                let file = format!("records/{}.parquet", self.name(r.table));
                (self.name(*c).to_owned(), *s, r.event_id.to_string(), file)
            })
            .collect();
        missing.sort();
        for (chain, seq, event_id, file) in missing {
            self.find(
                Check::ProofMissing,
                Some(&file),
                Some((&event_id, &chain, seq)),
                "no proof names this record: it was added",
            );
        }
    }
}

/// Walks each job's audit path (row, seq, leaf hash, path) to `cp`'s head, on every core;
/// returns the rows whose path does not lead there, and why.
fn walk_paths(jobs: &[(usize, u64, Hash, Vec<Hash>)], cp: &Checkpoint) -> Vec<(usize, String)> {
    let check = |chunk: &[(usize, u64, Hash, Vec<Hash>)]| -> Vec<(usize, String)> {
        chunk
            .iter()
            .filter_map(|(row, seq, leaf, path)| {
                merkle::verify_inclusion(*seq, cp.size, leaf, path, &cp.root)
                    .err()
                    .map(|e| (*row, e.to_string()))
            })
            .collect()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || jobs.len() < 1024 {
        return check(jobs);
    }
    let per = jobs.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .map(|c| (c, s.spawn(move || check(c))))
            .collect();
        handles
            .into_iter()
            .flat_map(|(chunk, h)| {
                // A check that panicked proved nothing: every path it held fails.
                h.join().unwrap_or_else(|_| {
                    chunk
                        .iter()
                        .map(|j| (j.0, "the check failed unexpectedly".to_owned()))
                        .collect()
                })
            })
            .collect()
    })
}
