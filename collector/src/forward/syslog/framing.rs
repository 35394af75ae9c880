//! Framing of syslog messages on the wire: octet counting (RFC 5425 §4.3, RFC 6587 §3.4.1),
//! non-transparent LF framing (RFC 6587 §3.4.2), or none (a UDP datagram is one message,
//! RFC 5426).

use super::config::Framing;

/// Appends `message`, framed, to `out`: `MSG-LEN SP message` for octet counting (the length in
/// decimal, of the message's bytes alone), `message LF` for LF framing, `message` itself for a
/// datagram (`None`). The message must not hold a LF under LF framing (the builder sees to it).
pub fn frame_into(framing: Option<Framing>, message: &[u8], out: &mut Vec<u8>) {
    match framing {
        Some(Framing::OctetCounting) => {
            out.extend_from_slice(message.len().to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(message);
        }
        Some(Framing::Lf) => {
            out.extend_from_slice(message);
            out.push(b'\n');
        }
        None => out.extend_from_slice(message),
    }
}

/// Splits an octet-counted stream back into messages (for tests and diagnostics); `None` when
/// it is not well formed (a length that is not decimal, a frame cut short).
pub fn split_octet_counted(mut stream: &[u8]) -> Option<Vec<&[u8]>> {
    let mut frames = Vec::new();
    while !stream.is_empty() {
        let space = stream.iter().position(|b| *b == b' ')?;
        let digits = &stream[..space];
        if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let rest = &stream[space + 1..];
        if rest.len() < len {
            return None;
        }
        frames.push(&rest[..len]);
        stream = &rest[len..];
    }
    Some(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_counting_carries_newlines_and_counts_bytes_not_chars() {
        let text = "<109>1 - h a - tool_call - first line\nsecond line\r\nthird é";
        let a = text.as_bytes();
        let b = b"<109>1 - h a - - - \n";
        let mut out = Vec::new();
        frame_into(Some(Framing::OctetCounting), a, &mut out);
        frame_into(Some(Framing::OctetCounting), b, &mut out);
        let expected_prefix = format!("{} ", a.len());
        assert!(out.starts_with(expected_prefix.as_bytes()));
        assert_eq!(a.len(), text.chars().count() + 1, "é is two bytes");
        assert_eq!(split_octet_counted(&out).unwrap(), vec![a, &b[..]]);
        assert_eq!(&out[out.len() - b.len() - 3..out.len() - b.len()], b"20 ");
    }

    #[test]
    fn lf_framing_and_datagrams() {
        let mut out = Vec::new();
        frame_into(Some(Framing::Lf), b"<13>one", &mut out);
        frame_into(Some(Framing::Lf), b"<13>two", &mut out);
        assert_eq!(out, b"<13>one\n<13>two\n");
        let mut out = Vec::new();
        frame_into(None, b"<13>one", &mut out);
        assert_eq!(out, b"<13>one");
    }

    #[test]
    fn malformed_octet_counted_streams_are_refused() {
        assert_eq!(split_octet_counted(b""), Some(vec![]));
        assert_eq!(split_octet_counted(b"5 abc"), None);
        assert_eq!(split_octet_counted(b"x abc"), None);
        assert_eq!(split_octet_counted(b" abc"), None);
        assert_eq!(split_octet_counted(b"3abc"), None);
        assert_eq!(
            split_octet_counted(b"3 abc1 d").unwrap(),
            vec![&b"abc"[..], b"d"]
        );
    }
}
