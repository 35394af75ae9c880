//! Checkpoints round-trip through their text and their signed notes, the C2SP example parses,
//! every malformation is refused, and an edited or foreign-signed checkpoint does not open.

use super::*;

/// The body of the C2SP tlog-checkpoint example.
const C2SP_BODY: &str = "example.com/behind-the-sofa\n\
                         20852163\n\
                         CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

fn sample(timestamp: Option<u64>) -> Checkpoint {
    Checkpoint {
        origin: "calltrail.local/0192f0c4-7e11-7a3b-9c5d-2f1e0a9b8c7d".into(),
        size: 1234,
        root: std::array::from_fn(|i| i as u8),
        timestamp,
    }
}

fn key() -> SigningKey {
    SigningKey::generate("calltrail.local").unwrap()
}

fn malformed(text: &str) -> bool {
    matches!(Checkpoint::parse(text), Err(CheckpointError::Malformed(_)))
}

#[test]
fn text_form_is_exact() {
    let root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let origin = "calltrail.local/0192f0c4-7e11-7a3b-9c5d-2f1e0a9b8c7d";
    assert_eq!(sample(None).to_text(), format!("{origin}\n1234\n{root}\n"));
    assert_eq!(
        sample(Some(1_767_225_600)).to_text(),
        format!("{origin}\n1234\n{root}\ntimestamp 1767225600\n")
    );
}

#[test]
fn text_round_trips() {
    for cp in [
        sample(None),
        sample(Some(0)),
        sample(Some(u64::MAX)),
        Checkpoint {
            size: 0,
            ..sample(Some(1))
        },
        Checkpoint {
            size: u64::MAX,
            root: [0xff; 32],
            ..sample(None)
        },
    ] {
        assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    }
}

#[test]
fn c2sp_example_body_parses() {
    let cp = Checkpoint::parse(C2SP_BODY).unwrap();
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20852163);
    assert_eq!(
        STANDARD.encode(cp.root),
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="
    );
    assert_eq!(cp.timestamp, None);
    assert_eq!(cp.to_text(), C2SP_BODY);
}

#[test]
fn other_extension_lines_are_ignored() {
    let text = format!("{C2SP_BODY}other extension\ntimestamp 42\ntimestamp\ntimestampx 1\n");
    let cp = Checkpoint::parse(&text).unwrap();
    assert_eq!(cp.timestamp, Some(42));
    assert_eq!(cp.size, 20852163);
}

#[test]
fn origin_is_not_assumed_to_be_a_url() {
    // The spec: clients must not assume the origin's format; only logs avoid spaces and '+'.
    let text = C2SP_BODY.replace("example.com/behind-the-sofa", "a log+name");
    assert_eq!(Checkpoint::parse(&text).unwrap().origin, "a log+name");
}

#[test]
fn malformed_layout_is_refused() {
    let no_newline = C2SP_BODY.trim_end_matches('\n');
    let two_lines = "example.com/log\n0\n";
    let cases = [
        "",
        "\n",
        no_newline,
        two_lines,
        "example.com/log\n",
        // an empty origin
        "\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
    ];
    for text in cases {
        assert!(malformed(text), "{text:?}");
    }
    // An empty line anywhere: between the mandatory lines, as an extension, at the end.
    assert!(malformed(&C2SP_BODY.replacen('\n', "\n\n", 1)));
    assert!(malformed(&format!("{C2SP_BODY}\n")));
    assert!(malformed(&format!("{C2SP_BODY}\ntimestamp 1\n")));
    assert!(malformed(&format!("{C2SP_BODY}timestamp 1\n\n")));
    // CRLF line endings, and other control characters.
    assert!(malformed(&C2SP_BODY.replace('\n', "\r\n")));
    assert!(malformed(&C2SP_BODY.replace("example", "exa\tmple")));
    assert!(malformed(&C2SP_BODY.replace("example", "exa\0mple")));
}

#[test]
fn malformed_sizes_are_refused() {
    for size in [
        "",
        "01",
        "00",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1a",
        "0x10",
        "1_000",
        "\u{661}",
        "18446744073709551616",
    ] {
        let text = C2SP_BODY.replace("20852163", size);
        assert!(malformed(&text), "{size:?}");
    }
    let max = C2SP_BODY.replace("20852163", "18446744073709551615");
    assert_eq!(Checkpoint::parse(&max).unwrap().size, u64::MAX);
    let zero = C2SP_BODY.replace("20852163", "0");
    assert_eq!(Checkpoint::parse(&zero).unwrap().size, 0);
}

#[test]
fn malformed_roots_are_refused() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let raw = STANDARD.decode(root).unwrap();
    for bad in [
        String::new(),
        // missing padding
        root.trim_end_matches('=').to_owned(),
        // non-zero trailing bits: 'I' is 0b001000, 'J' sets a bit past the 32nd byte
        root.replace("q2I=", "q2J="),
        // 31 and 33 bytes
        STANDARD.encode(&raw[..31]),
        STANDARD.encode([&raw[..], &[0]].concat()),
        // URL-safe alphabet, whitespace, hex
        root.replace('/', "_"),
        format!(" {root}"),
        format!("{root} "),
        "0a".repeat(32),
    ] {
        let text = C2SP_BODY.replace(root, &bad);
        assert!(malformed(&text), "{bad:?}");
    }
}

#[test]
fn malformed_timestamps_are_refused() {
    for ts in [
        "timestamp ",
        "timestamp 01",
        "timestamp -1",
        "timestamp +1",
        "timestamp 1.5",
        "timestamp  1",
        "timestamp 1 ",
        "timestamp 18446744073709551616",
        "timestamp 2026-01-01T00:00:00Z",
    ] {
        assert!(malformed(&format!("{C2SP_BODY}{ts}\n")), "{ts:?}");
    }
    assert!(malformed(&format!("{C2SP_BODY}timestamp 1\ntimestamp 1\n")));
}

#[test]
fn signed_checkpoint_round_trips() {
    let key = key();
    for cp in [sample(None), sample(Some(1_767_225_600))] {
        let signed = SignedCheckpoint::sign(cp.clone(), &key).unwrap();
        assert_eq!(signed.checkpoint, cp);
        assert!(
            signed
                .note
                .starts_with(&format!("{}\n\u{2014} calltrail.local ", cp.to_text()))
        );
        let opened = SignedCheckpoint::open(&signed.note, &key.verifier()).unwrap();
        assert_eq!(opened, signed);
    }
}

#[test]
fn sign_refuses_invalid_origins() {
    let key = key();
    for origin in [
        "",
        "calltrail local",
        "calltrail+local",
        "calltrail\nlocal",
        "a\u{a0}b",
    ] {
        let cp = Checkpoint {
            origin: origin.into(),
            ..sample(None)
        };
        assert_eq!(
            SignedCheckpoint::sign(cp, &key).unwrap_err(),
            CheckpointError::InvalidOrigin(origin.into())
        );
    }
}

#[test]
fn edited_root_line_does_not_open() {
    let key = key();
    let signed = SignedCheckpoint::sign(sample(Some(7)), &key).unwrap();
    let other_root = STANDARD.encode([9u8; 32]);
    let edited = signed
        .note
        .replace(&STANDARD.encode(sample(None).root), &other_root);
    assert_ne!(edited, signed.note);
    assert!(matches!(
        SignedCheckpoint::open(&edited, &key.verifier()),
        Err(CheckpointError::Signature(NoteError::BadSignature { .. }))
    ));
    // Nor an edited size or timestamp.
    for edited in [
        signed.note.replacen("\n1234\n", "\n1235\n", 1),
        signed.note.replacen("timestamp 7\n", "timestamp 8\n", 1),
        signed.note.replacen("timestamp 7\n", "", 1),
    ] {
        assert!(matches!(
            SignedCheckpoint::open(&edited, &key.verifier()),
            Err(CheckpointError::Signature(NoteError::BadSignature { .. }))
        ));
    }
}

#[test]
fn checkpoint_signed_by_another_key_does_not_open() {
    let ours = key();
    // Same name, another key: the key id differs, so it is an unknown key.
    let theirs = key();
    let signed = SignedCheckpoint::sign(sample(Some(7)), &theirs).unwrap();
    assert!(matches!(
        SignedCheckpoint::open(&signed.note, &ours.verifier()),
        Err(CheckpointError::Signature(NoteError::UnknownKey { .. }))
    ));
}

#[test]
fn validly_signed_malformed_body_is_refused_after_the_signature() {
    let key = key();
    let note = sign_note("example.com/log\n01\nAAAA\n", &key).unwrap();
    assert!(matches!(
        SignedCheckpoint::open(&note, &key.verifier()),
        Err(CheckpointError::Malformed(_))
    ));
}
