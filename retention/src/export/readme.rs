//! The bundle's README.txt: what the bundle is and how to check it, for a reader who has never
//! heard of Calltrail. It is one of the files the signed manifest lists.

use std::fmt::Write as _;

use super::manifest::Manifest;
use super::{Format, Selection};

/// The README of the bundle `manifest` describes (its file list is not needed).
pub(crate) fn render(manifest: &Manifest, selection: &Selection) -> String {
    let mut t = String::new();
    let filters = if manifest.filters.is_empty() {
        "no other filter".to_owned()
    } else {
        manifest
            .filters
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tables = if manifest.tables.is_empty() {
        "no records".to_owned()
    } else {
        manifest
            .tables
            .iter()
            .map(|(t, n)| format!("{n} in {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let llm_note = if selection.tables().len() == 1 {
        "\nA server or tool filter was given, and LLM calls have neither: only tool calls are included.\n"
    } else {
        ""
    };
    let text_files = match manifest.format {
        Format::Parquet => String::new(),
        f => format!(
            "  records/<table>.{f}       the same records as {}, in the same order\n",
            if f == Format::Csv {
                "CSV (RFC 4180, header line; an empty field is a null, \"\" an empty string)"
            } else {
                "JSON Lines (one object per record; nulls left out)"
            }
        ),
    };
    let _ = write!(
        t,
        "CALLTRAIL COMPLIANCE EXPORT
===========================

This directory holds records of AI agents' tool calls (and LLM calls) kept by Calltrail, a
tamper-evident recorder, together with the evidence that they are complete and unaltered
copies of what was recorded.

Selection: records whose start_time is from {from} (included) to {to} (excluded), with
{filters}. It holds {records} records: {tables}.
{llm_note}
Files
-----
  README.txt                   this text
  manifest.note                the list of every other file with its SHA-256 and size, the
                               selection and the record counts, signed with the recorder's key
  pubkey.txt                   the recorder's public key (compare it with the one you were given)
  records/<table>.parquet      the records (Apache Parquet; any SQL engine reads it)
{text_files}  proofs/<chain>.parquet       for every record, its position (seq) in the recorder's hash chain,
                               its leaf hash and an RFC 9162 audit path to a signed tree head
  checkpoints/<chain>.note     that signed tree head (a C2SP checkpoint: size and root hash)
  receipts/<chain>.jsonl       signed receipts of records the retention policy deleted, if any

How the evidence works
----------------------
Every record is hashed over a canonical encoding of its values (its leaf hash). The recorder
keeps all records of a chain in a Merkle tree (RFC 6962) and regularly signs the tree's root
hash with an Ed25519 key (the checkpoint). An audit path proves that one record sits at its
position in the tree whose root the checkpoint signs, so the record cannot have been altered,
and it cannot have been added afterwards. The manifest, signed with the same key, lists every
file of this bundle, so a file added, removed or edited is noticed.

How to check it
---------------
1. With Calltrail (checks everything: signatures, every file, every record's hash recomputed
   from its values, every audit path):

     calltrail verify-export THIS_DIRECTORY --pubkey KEY_FILE

   KEY_FILE is the recorder's public key as you received it from its operator, not pubkey.txt
   from this bundle. The command exits with status 0 only when every check passes, and names
   each failure (file, record, check). Add --json for a machine-readable report.

2. Without Calltrail, the basics:

   - Every file's SHA-256 against the manifest (GNU coreutils):

       grep '^file ' manifest.note | awk '{{print $2 \"  \" $4}}' | sha256sum -c

   - The record count against the manifest's `records` and `table` lines (DuckDB):

       SELECT count(*) FROM read_parquet('records/*.parquet', union_by_name = true);

   - The manifest's, checkpoints' and receipts' signatures: they are C2SP signed notes
     (https://c2sp.org/signed-note) with Ed25519; Go's golang.org/x/mod/sumdb/note verifies them
     with the key in pubkey.txt.

   - An audit path (proofs/*.parquet, column audit_path, leaf to root) against the checkpoint's
     root follows RFC 9162 section 2.1.3.2; a record's leaf hash is SHA-256(0x00 || canonical
     bytes), the encoding described in Calltrail's docs/specs/chain.md.

A directory named <name>.partial-<number> is an export that did not finish: it has no
manifest.note and is not evidence of anything.
",
        from = manifest.from,
        to = manifest.to,
        records = manifest.records,
    );
    t
}
