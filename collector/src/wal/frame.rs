//! The frame: one appended request.
//!
//! ```text
//! | payload length: u32 LE | CRC32C: u32 LE | sequence number: u64 LE | payload |
//! ```
//!
//! The CRC32C covers the length, the sequence number and the payload, so a torn or corrupted
//! length is caught as surely as a corrupted payload.

use std::io::{self, Read};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// The largest payload a frame may declare; a larger length is corruption. Requests are limited
/// to a few MiB by the receivers, and their records encode to about as much.
pub const MAX_PAYLOAD: u32 = 256 << 20;

fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let c = crc32c::crc32c(&len.to_le_bytes());
    let c = crc32c::crc32c_append(c, &seq.to_le_bytes());
    crc32c::crc32c_append(c, payload)
}

/// Appends one frame to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(len, seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Why reading stopped before the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// The segment ends inside a frame: a write that never finished.
    Partial,
    /// A frame's checksum does not match its bytes.
    Checksum,
    /// A frame declares a length above [`MAX_PAYLOAD`].
    Length,
    /// A frame's sequence number is not above the previous one's.
    Sequence,
    /// The segment does not start with the segment magic.
    Header,
}

impl Damage {
    /// A word for logs and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::Partial => "partial frame",
            Damage::Checksum => "checksum mismatch",
            Damage::Length => "impossible length",
            Damage::Sequence => "sequence number out of order",
            Damage::Header => "bad segment header",
        }
    }
}

/// What the next read found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A whole, valid frame; its payload is in the buffer passed in.
    Frame {
        /// Its sequence number.
        seq: u64,
    },
    /// The clean end of the segment.
    End,
    /// The rest of the segment is unusable.
    Damaged(Damage),
}

/// Reads as many bytes as are there, up to `buf.len()`.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads the next frame into `payload`. `prev` is the previous frame's sequence number.
pub fn read_next(r: &mut impl Read, prev: Option<u64>, payload: &mut Vec<u8>) -> io::Result<Next> {
    let mut header = [0u8; HEADER_LEN];
    match read_up_to(r, &mut header)? {
        0 => return Ok(Next::End),
        HEADER_LEN => {}
        _ => return Ok(Next::Damaged(Damage::Partial)),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut s = [0u8; 8];
    s.copy_from_slice(&header[8..16]);
    let seq = u64::from_le_bytes(s);
    if len > MAX_PAYLOAD {
        return Ok(Next::Damaged(Damage::Length));
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if read_up_to(r, payload)? < len as usize {
        return Ok(Next::Damaged(Damage::Partial));
    }
    if checksum(len, seq, payload) != crc {
        return Ok(Next::Damaged(Damage::Checksum));
    }
    if prev.is_some_and(|p| seq <= p) {
        return Ok(Next::Damaged(Damage::Sequence));
    }
    Ok(Next::Frame { seq })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, 7, b"hello");
        encode(&mut out, 8, b"");
        encode(&mut out, 10, b"world!");
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<(u64, Vec<u8>)>, Next) {
        let mut r = bytes;
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut prev = None;
        loop {
            match read_next(&mut r, prev, &mut buf).unwrap() {
                Next::Frame { seq } => {
                    prev = Some(seq);
                    out.push((seq, buf.clone()));
                }
                other => return (out, other),
            }
        }
    }

    #[test]
    fn frames_round_trip() {
        let (got, end) = read_all(&frames());
        assert_eq!(end, Next::End);
        assert_eq!(
            got,
            vec![
                (7, b"hello".to_vec()),
                (8, vec![]),
                (10, b"world!".to_vec())
            ]
        );
    }

    #[test]
    fn every_truncation_keeps_the_whole_frames_before_it() {
        let all = frames();
        let ends = [HEADER_LEN + 5, 2 * HEADER_LEN + 5, all.len()];
        for cut in 0..all.len() {
            let (got, end) = read_all(&all[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(got.len(), whole, "cut at {cut}");
            let clean = cut == 0 || ends.contains(&cut);
            assert_eq!(end == Next::End, clean, "cut at {cut}: {end:?}");
        }
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let all = frames();
        for i in 0..all.len() {
            for bit in 0..8 {
                let mut b = all.clone();
                b[i] ^= 1 << bit;
                let (got, end) = read_all(&b);
                assert_ne!(end, Next::End, "flip of byte {i} bit {bit} went unnoticed");
                assert!(got.len() < 3);
            }
        }
    }

    #[test]
    fn out_of_order_sequence_numbers_are_damage() {
        let mut out = Vec::new();
        encode(&mut out, 5, b"a");
        encode(&mut out, 5, b"b");
        let (got, end) = read_all(&out);
        assert_eq!(got.len(), 1);
        assert_eq!(end, Next::Damaged(Damage::Sequence));
    }
}
