//! The write-time duplicate filter: a bounded window of recently written event ids.
//!
//! An exporter that times out retries the same batch; its spans carry the same trace id, span id
//! and side, hence the same deterministic `event_id`. Remembering the last `capacity` ids (about
//! 40 bytes each) drops such retries before they reach Parquet; older duplicates are folded by
//! the `calls` view.

use std::collections::{HashSet, VecDeque};

/// The last `capacity` event ids written.
#[derive(Debug)]
pub struct DedupWindow {
    seen: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl DedupWindow {
    /// A window of `capacity` ids; 0 turns the filter off.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `event_id`; false when it is already in the window (a duplicate).
    pub fn insert(&mut self, event_id: &str) -> bool {
        if self.capacity == 0 {
            return true;
        }
        let key = key(event_id);
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// 128 bits of the id: event ids are UUIDs made from a SHA-256, so their hex digits are the key;
/// any other text is hashed (FNV-1a, twice, for 128 bits).
fn key(event_id: &str) -> u128 {
    let mut v: u128 = 0;
    let mut digits = 0;
    for c in event_id.bytes() {
        if c == b'-' {
            continue;
        }
        match (c as char).to_digit(16) {
            Some(d) if digits < 32 => {
                v = (v << 4) | u128::from(d);
                digits += 1;
            }
            _ => return fnv128(event_id),
        }
    }
    if digits == 32 { v } else { fnv128(event_id) }
}

fn fnv128(s: &str) -> u128 {
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x8422_2325_cbf2_9ce4;
    for c in s.bytes() {
        a = (a ^ u64::from(c)).wrapping_mul(0x100_0000_01b3);
        b = (b ^ u64::from(c))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(5);
    }
    (u128::from(a) << 64) | u128::from(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_repeats_within_the_window_only() {
        let mut w = DedupWindow::new(2);
        let ids = [
            "0f1e2d3c-4b5a-8978-8695-a4b3c2d1e0f9",
            "1f1e2d3c-4b5a-8978-8695-a4b3c2d1e0f9",
            "e7",
        ];
        assert!(w.insert(ids[0]));
        assert!(!w.insert(ids[0]));
        assert!(w.insert(ids[1]));
        assert!(w.insert(ids[2]));
        // ids[0] has left the two-id window.
        assert!(w.insert(ids[0]));
        assert!(!w.insert(ids[2]));
    }

    #[test]
    fn zero_capacity_keeps_everything() {
        let mut w = DedupWindow::new(0);
        assert!(w.insert("a") && w.insert("a"));
    }

    #[test]
    fn uuid_keys_differ_in_every_digit() {
        assert_ne!(
            key("00000000-0000-8000-8000-000000000001"),
            key("00000000-0000-8000-8000-000000000002")
        );
        assert_ne!(key("x1"), key("x2"));
    }
}
