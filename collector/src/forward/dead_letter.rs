//! A destination's dead letters: events it refused for good (a poison record), appended with
//! the reason to `<data_dir>/forward/<destination>/dead-letter.jsonl` and fsynced, so one bad
//! event never blocks the rest and is never silently lost.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::cursor::state_dir;
use super::transport::Message;

#[derive(Serialize)]
struct Entry<'a> {
    time: String,
    destination: &'a str,
    event_id: &'a str,
    kind: &'static str,
    chain_id: &'a str,
    seq: u64,
    reason: &'a str,
    payload: std::borrow::Cow<'a, str>,
}

/// The dead-letter file of a destination.
pub fn path(data_dir: &Path, destination: &str) -> PathBuf {
    state_dir(data_dir, destination).join("dead-letter.jsonl")
}

/// Appends `message`, refused by `destination` for `reason`, durably.
pub fn append(
    data_dir: &Path,
    destination: &str,
    message: &Message,
    reason: &str,
) -> std::io::Result<()> {
    let p = path(data_dir, destination);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let entry = Entry {
        time: chrono::Utc::now().to_rfc3339(),
        destination,
        event_id: &message.meta.event_id,
        kind: message.meta.kind.as_str(),
        chain_id: &message.meta.chain_id,
        seq: message.meta.seq,
        reason,
        payload: String::from_utf8_lossy(&message.payload),
    };
    let mut line = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)?;
    f.write_all(&line)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::event::{EventKind, EventMeta};

    #[test]
    fn dead_letters_are_appended_with_their_reason() {
        let dir = tempfile::tempdir().unwrap();
        let message = Message {
            payload: b"CEF:0|x".to_vec(),
            meta: EventMeta {
                kind: EventKind::ToolCall,
                event_id: "e1".into(),
                chain_id: "c".into(),
                seq: 7,
                hash: "00".into(),
                time_ns: 0,
                tenant: None,
                principal: None,
                severity: 6,
            },
        };
        append(dir.path(), "soc", &message, "MessageSizeTooLarge").unwrap();
        append(dir.path(), "soc", &message, "again").unwrap();
        let text = std::fs::read_to_string(path(dir.path(), "soc")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["reason"], "MessageSizeTooLarge");
        assert_eq!(lines[0]["seq"], 7);
        assert_eq!(lines[1]["payload"], "CEF:0|x");
    }
}
