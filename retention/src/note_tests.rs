//! The example of Go's `golang.org/x/mod/sumdb/note` documentation is reproduced byte for byte
//! (Ed25519 is deterministic), keys round-trip through their text forms, and every malformed
//! key, text and note, and every forged or misdirected signature, is refused with its own error.

use super::*;

/// The example key, text and signed note of the `golang.org/x/mod/sumdb/note` package doc.
const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const SIG_LINE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
/// The doc's second signature, by a key ("EnochRoot") whose public key it does not give.
const ENOCH_LINE: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn go_note() -> String {
    format!("{TEXT}\n{SIG_LINE}")
}

fn peter() -> SigningKey {
    SigningKey::parse(SKEY).unwrap()
}

fn peter_v() -> VerifierKey {
    VerifierKey::parse(VKEY).unwrap()
}

/// A signature line with the given name, key id and signature bytes.
fn sig_line(name: &str, key_id: u32, sig: &[u8]) -> String {
    let mut raw = key_id.to_be_bytes().to_vec();
    raw.extend_from_slice(sig);
    format!("\u{2014} {name} {}\n", STANDARD.encode(raw))
}

/// A key text split before its key data: the data itself may hold '+'.
fn split_key_data(text: &str) -> (&str, &str) {
    let fields = if text.starts_with("PRIVATE+KEY+") {
        4
    } else {
        2
    };
    let at = text.match_indices('+').nth(fields - 1).unwrap().0;
    (&text[..at], &text[at + 1..])
}

/// The note's single signature, decoded (key id included).
fn decoded_sig(note: &str) -> Vec<u8> {
    let line = note.rsplit_once(' ').unwrap().1.trim_end();
    STANDARD.decode(line).unwrap()
}

#[test]
fn go_example_keys_parse_and_round_trip() {
    let key = peter();
    assert_eq!(key.name(), "PeterNeumann");
    assert_eq!(key.key_id(), 0xc74f20a3);
    assert_eq!(key.to_text(), SKEY);
    let v = peter_v();
    assert_eq!(v.name(), "PeterNeumann");
    assert_eq!(v.key_id(), 0xc74f20a3);
    assert_eq!(v.to_text(), VKEY);
    assert_eq!(key.verifier(), v);
}

#[test]
fn go_example_signs_byte_for_byte() {
    assert_eq!(sign_note(TEXT, &peter()).unwrap(), go_note());
}

#[test]
fn go_example_opens() {
    assert_eq!(open_note(&go_note(), &peter_v()).unwrap(), TEXT);
}

#[test]
fn go_example_cosigned_by_an_unknown_key_opens() {
    // The spec: signatures by keys the verifier does not know are ignored, before or after ours.
    let after = format!("{TEXT}\n{SIG_LINE}{ENOCH_LINE}");
    assert_eq!(open_note(&after, &peter_v()).unwrap(), TEXT);
    let before = format!("{TEXT}\n{ENOCH_LINE}{SIG_LINE}");
    assert_eq!(open_note(&before, &peter_v()).unwrap(), TEXT);
}

#[test]
fn key_texts_tolerate_trailing_whitespace() {
    assert_eq!(
        SigningKey::parse(&format!("{SKEY}\n")).unwrap().to_text(),
        SKEY
    );
    assert_eq!(
        VerifierKey::parse(&format!("{VKEY} \r\n")).unwrap(),
        peter_v()
    );
    assert!(SigningKey::parse(&format!(" {SKEY}")).is_err());
    assert!(VerifierKey::parse(&format!("\n{VKEY}")).is_err());
}

#[test]
fn key_id_in_capitals_is_accepted() {
    let upper = VKEY.replace("c74f20a3", "C74F20A3");
    assert_eq!(VerifierKey::parse(&upper).unwrap(), peter_v());
}

#[test]
fn debug_does_not_show_the_seed() {
    let shown = format!("{:?}", peter());
    assert!(
        shown.contains("PeterNeumann") && shown.contains("c74f20a3"),
        "{shown}"
    );
    let seed = &STANDARD.decode(split_key_data(SKEY).1).unwrap()[1..];
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let seed_dec = format!("{:?}", seed);
    for secret in [&SKEY[34..], &seed_hex, &seed_dec[1..seed_dec.len() - 1]] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn generated_keys_round_trip_and_sign() {
    let key = SigningKey::generate("calltrail.example/audit").unwrap();
    let again = SigningKey::parse(&key.to_text()).unwrap();
    assert_eq!(again.key_id(), key.key_id());
    assert_eq!(again.verifier(), key.verifier());
    let v = VerifierKey::parse(&key.verifier().to_text()).unwrap();
    assert_eq!(v, key.verifier());
    assert!(
        key.verifier()
            .to_text()
            .starts_with("calltrail.example/audit+")
    );

    let text = "calltrail.example/audit/chain\n3\n";
    let note = sign_note(text, &again).unwrap();
    assert_eq!(note, sign_note(text, &key).unwrap());
    assert_eq!(open_note(&note, &v).unwrap(), text);
    assert!(v.verify(text.as_bytes(), &key.sign(text.as_bytes())));

    let other = SigningKey::generate("calltrail.example/audit").unwrap();
    assert_ne!(other.verifier(), key.verifier());
}

#[test]
fn generate_refuses_invalid_names() {
    for name in [
        "",
        "a b",
        "a+b",
        "a\u{a0}b",
        "a\u{2003}b",
        "a\tb",
        "a\nb",
        "a\u{1}b",
    ] {
        assert_eq!(
            SigningKey::generate(name).unwrap_err(),
            NoteError::InvalidName(name.to_owned())
        );
    }
}

#[test]
fn key_with_wrong_key_id_is_refused() {
    let expected = NoteError::KeyIdMismatch {
        name: "PeterNeumann".into(),
        written: 0xc74f20a4,
        computed: 0xc74f20a3,
    };
    let bad = VKEY.replace("c74f20a3", "c74f20a4");
    assert_eq!(VerifierKey::parse(&bad).unwrap_err(), expected);
    let bad = SKEY.replace("c74f20a3", "c74f20a4");
    assert_eq!(SigningKey::parse(&bad).unwrap_err(), expected);
    // The id covers the name: the same key under another name has another id.
    let renamed = VKEY.replace("PeterNeumann", "PeterNeuman");
    assert!(matches!(
        VerifierKey::parse(&renamed),
        Err(NoteError::KeyIdMismatch { .. })
    ));
}

#[test]
fn key_with_wrong_algorithm_byte_is_refused() {
    for text in [VKEY, SKEY] {
        let (head, data) = split_key_data(text);
        let mut raw = STANDARD.decode(data).unwrap();
        raw[0] = 0x02;
        let bad = format!("{head}+{}", STANDARD.encode(&raw));
        let err = if text == VKEY {
            VerifierKey::parse(&bad).unwrap_err()
        } else {
            SigningKey::parse(&bad).unwrap_err()
        };
        assert_eq!(err, NoteError::UnsupportedAlgorithm(0x02));
    }
}

#[test]
fn malformed_keys_are_refused() {
    let (vhead, vdata) = split_key_data(VKEY);
    let raw = STANDARD.decode(vdata).unwrap();
    let cases = [
        String::new(),
        "PeterNeumann".into(),
        "PeterNeumann+c74f20a3".into(),
        format!("{vhead}+"),
        // truncated base64
        VKEY[..VKEY.len() - 1].to_owned(),
        // base64 without its padding... (33 bytes need none, so cut a byte and drop the '=')
        format!(
            "{vhead}+{}",
            STANDARD.encode(&raw[..32]).trim_end_matches('=')
        ),
        // a byte short, a byte long
        format!("{vhead}+{}", STANDARD.encode(&raw[..32])),
        format!("{vhead}+{}", STANDARD.encode([&raw[..], &[0]].concat())),
        // key id: 7 digits, 9 digits, a sign, not hex
        VKEY.replace("c74f20a3", "c74f20a"),
        VKEY.replace("c74f20a3", "c74f20a30"),
        VKEY.replace("c74f20a3", "-74f20a3"),
        VKEY.replace("c74f20a3", "c74f20ag"),
        // names
        VKEY.replace("PeterNeumann", ""),
        VKEY.replace("PeterNeumann", "Peter Neumann"),
        // base64 with a space in it
        VKEY.replace("/LDE4", "/ LDE4"),
        // a private key given as a public one
        SKEY.into(),
    ];
    for text in &cases {
        assert!(
            matches!(VerifierKey::parse(text), Err(NoteError::MalformedKey(_))),
            "{text:?}"
        );
    }
    let private_cases = [
        // a public key given as a private one
        VKEY.to_owned(),
        SKEY.replace("PRIVATE+KEY+", "PRIVATE+KEYS+"),
        SKEY.replace("PRIVATE+KEY+", "private+key+"),
        SKEY[..SKEY.len() - 1].to_owned(),
        SKEY.replace("PeterNeumann", "Peter\u{a0}Neumann"),
    ];
    for text in &private_cases {
        assert!(
            matches!(SigningKey::parse(text), Err(NoteError::MalformedKey(_))),
            "{text:?}"
        );
    }
}

#[test]
fn malformed_key_errors_do_not_quote_the_key() {
    let err = SigningKey::parse(&SKEY[..SKEY.len() - 1]).unwrap_err();
    assert!(!err.to_string().contains(&SKEY[34..40]), "{err}");
}

#[test]
fn sign_note_refuses_invalid_texts() {
    for text in [
        "",
        "no newline",
        "\n",
        "\nleading blank line\n",
        "a blank\n\nline\n",
        "ends in a blank line\n\n",
        "carriage return\r\n",
        "nul \0\n",
    ] {
        assert!(
            matches!(sign_note(text, &peter()), Err(NoteError::InvalidText(_))),
            "{text:?}"
        );
    }
    let huge = "a".repeat(MAX_NOTE_BYTES) + "\n";
    assert!(matches!(
        sign_note(&huge, &peter()),
        Err(NoteError::InvalidText(_))
    ));
}

#[test]
fn flipped_signature_bit_is_refused() {
    let mut raw = decoded_sig(&go_note());
    for bit in [0, 7, 100, 511] {
        raw[4 + bit / 8] ^= 1 << (bit % 8);
        let note = format!(
            "{TEXT}\n{}",
            sig_line("PeterNeumann", 0xc74f20a3, &raw[4..])
        );
        assert_eq!(
            open_note(&note, &peter_v()).unwrap_err(),
            NoteError::BadSignature {
                name: "PeterNeumann".into(),
                key_id: 0xc74f20a3
            }
        );
        raw[4 + bit / 8] ^= 1 << (bit % 8);
    }
}

#[test]
fn edited_text_is_refused() {
    for edited in [
        go_note().replace("cryptography", "Cryptography"),
        go_note().replace("is.\n", "is!\n"),
        format!("extra line\n{}", go_note()),
        // the blank line moved: the first line becomes part of the signed text's end
        go_note().replacen('\n', "\n\n", 1),
    ] {
        assert!(
            matches!(
                open_note(&edited, &peter_v()),
                Err(NoteError::BadSignature { .. })
            ),
            "{edited:?}"
        );
    }
}

#[test]
fn a_valid_then_an_invalid_signature_by_the_pinned_key_is_refused() {
    let mut raw = decoded_sig(&go_note());
    raw[10] ^= 1;
    let note = format!(
        "{}{}",
        go_note(),
        sig_line("PeterNeumann", 0xc74f20a3, &raw[4..])
    );
    assert!(matches!(
        open_note(&note, &peter_v()),
        Err(NoteError::BadSignature { .. })
    ));
    // Two copies of a good signature are fine.
    let twice = format!("{}{SIG_LINE}", go_note());
    assert_eq!(open_note(&twice, &peter_v()).unwrap(), TEXT);
}

#[test]
fn signature_of_the_wrong_length_by_the_pinned_key_is_refused() {
    let raw = decoded_sig(&go_note());
    for sig in [&raw[4..67], &[raw.as_slice(), &[0]].concat()[4..]] {
        let note = format!("{TEXT}\n{}", sig_line("PeterNeumann", 0xc74f20a3, sig));
        assert!(matches!(
            open_note(&note, &peter_v()),
            Err(NoteError::BadSignature { .. })
        ));
    }
}

#[test]
fn wrong_key_is_refused_as_unknown() {
    let unknown = |v: &VerifierKey| NoteError::UnknownKey {
        name: v.name().to_owned(),
        key_id: v.key_id(),
    };
    // Same name, another key (so another id).
    let impostor = SigningKey::generate("PeterNeumann").unwrap().verifier();
    assert_eq!(
        open_note(&go_note(), &impostor).unwrap_err(),
        unknown(&impostor)
    );
    // Another name.
    let other = SigningKey::generate("EnochRoot").unwrap().verifier();
    assert_eq!(open_note(&go_note(), &other).unwrap_err(), unknown(&other));
    // A note signed only by another key.
    let by_other = sign_note(TEXT, &SigningKey::generate("other.example/log").unwrap()).unwrap();
    assert_eq!(
        open_note(&by_other, &peter_v()).unwrap_err(),
        unknown(&peter_v())
    );
    let enoch_only = format!("{TEXT}\n{ENOCH_LINE}");
    assert_eq!(
        open_note(&enoch_only, &peter_v()).unwrap_err(),
        unknown(&peter_v())
    );
}

#[test]
fn signature_matching_the_name_or_the_id_alone_is_ignored() {
    let sig = &decoded_sig(&go_note())[4..];
    let lines = [
        sig_line("PeterNeumann", 0xc74f20a4, sig),
        sig_line("PeterNeumanN", 0xc74f20a3, sig),
    ];
    for line in &lines {
        let alone = format!("{TEXT}\n{line}");
        assert!(matches!(
            open_note(&alone, &peter_v()),
            Err(NoteError::UnknownKey { .. })
        ));
        let with_ours = format!("{TEXT}\n{line}{SIG_LINE}");
        assert_eq!(open_note(&with_ours, &peter_v()).unwrap(), TEXT);
    }
}

#[test]
fn colliding_key_id_with_another_key_is_a_bad_signature() {
    // An attacker can pick a key whose id collides with ours; its signature must still fail.
    let attacker = SigningKey::generate("PeterNeumann").unwrap();
    let note = format!(
        "{TEXT}\n{}",
        sig_line("PeterNeumann", 0xc74f20a3, &attacker.sign(TEXT.as_bytes()))
    );
    assert!(matches!(
        open_note(&note, &peter_v()),
        Err(NoteError::BadSignature { .. })
    ));
}

#[test]
fn missing_blank_line_is_refused() {
    let note = format!("{TEXT}{SIG_LINE}");
    assert!(matches!(
        open_note(&note, &peter_v()),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn garbage_signature_lines_are_refused() {
    let b64 = SIG_LINE.rsplit_once(' ').unwrap().1.trim_end();
    let short = sig_line("PeterNeumann", 0xc74f20a3, &[]);
    let garbage = [
        "garbage\n".to_owned(),
        "- PeterNeumann AAAAAAA=\n".to_owned(),
        "\u{2014}PeterNeumann AAAAAAA=\n".to_owned(),
        "\u{2014} PeterNeumann\n".to_owned(),
        "\u{2014} PeterNeumann \n".to_owned(),
        format!("\u{2014}  PeterNeumann {b64}\n"),
        format!("\u{2014} PeterNeumann  {b64}\n"),
        format!("\u{2014} PeterNeumann {b64} \n"),
        format!("\u{2014} Peter+Neumann {b64}\n"),
        format!("\u{2014} Peter\u{a0}Neumann {b64}\n"),
        // truncated base64, base64 without its padding, URL-safe base64
        format!("\u{2014} PeterNeumann {}\n", &b64[..b64.len() - 2]),
        format!("\u{2014} PeterNeumann {}\n", b64.trim_end_matches('=')),
        format!("\u{2014} PeterNeumann {}\n", b64.replace('/', "_")),
        // a key id and no signature
        short,
    ];
    for line in &garbage {
        // Malformed lines are refused wherever they are, even beside a good signature.
        for note in [
            format!("{TEXT}\n{line}"),
            format!("{TEXT}\n{SIG_LINE}{line}"),
            format!("{TEXT}\n{line}{SIG_LINE}"),
        ] {
            assert!(
                matches!(
                    open_note(&note, &peter_v()),
                    Err(NoteError::MalformedNote(_))
                ),
                "{note:?}"
            );
        }
    }
}

#[test]
fn truncated_notes_are_refused() {
    let note = go_note();
    for cut in [1, 2, 10, SIG_LINE.len(), SIG_LINE.len() + 1] {
        let truncated = &note[..note.len() - cut];
        assert!(
            matches!(
                open_note(truncated, &peter_v()),
                Err(NoteError::MalformedNote(_))
            ),
            "{truncated:?}"
        );
    }
    assert!(matches!(
        open_note("", &peter_v()),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn control_characters_are_refused() {
    for bad in [
        go_note().replace("problem,\n", "problem,\r\n"),
        go_note().replace("problem,", "problem,\t"),
        format!("{}\0", go_note()),
    ] {
        assert!(matches!(
            open_note(&bad, &peter_v()),
            Err(NoteError::MalformedNote(_))
        ));
    }
}

#[test]
fn signature_count_is_bounded() {
    let others = |n: usize| ENOCH_LINE.repeat(n);
    // The spec: verifiers must accept at least 16 signatures.
    let sixteen = format!("{TEXT}\n{}{SIG_LINE}", others(15));
    assert_eq!(open_note(&sixteen, &peter_v()).unwrap(), TEXT);
    let at_limit = format!("{TEXT}\n{}{SIG_LINE}", others(MAX_SIGNATURES - 1));
    assert_eq!(open_note(&at_limit, &peter_v()).unwrap(), TEXT);
    let over = format!("{TEXT}\n{}{SIG_LINE}", others(MAX_SIGNATURES));
    assert!(matches!(
        open_note(&over, &peter_v()),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn oversized_note_is_refused() {
    let filler = "a".repeat(MAX_NOTE_BYTES);
    let note = format!("{filler}\n{}", go_note());
    assert!(matches!(
        open_note(&note, &peter_v()),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn text_with_blank_lines_from_other_signers_opens_at_the_last_one() {
    // The spec allows blank lines in the text; we never sign one, but we read them as it says.
    let key = peter();
    let text = "first\n\nsecond\n";
    let sig = key.sign(text.as_bytes());
    let note = format!("{text}\n{}", sig_line("PeterNeumann", key.key_id(), &sig));
    assert_eq!(open_note(&note, &peter_v()).unwrap(), text);
}
