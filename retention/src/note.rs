//! C2SP signed notes (`c2sp.org/signed-note`) with Ed25519 keys, and the text forms of those keys
//! from Go's `golang.org/x/mod/sumdb/note`, so our checkpoints and keys work with that ecosystem's
//! tools and theirs with ours.
//!
//! A signed note is a text ending in a newline, a blank line, and one or more signature lines
//! `— <key name> <base64(key id (4 bytes, big-endian) || signature)>` (an em dash, U+2014, then a
//! space). The key id is the first 4 bytes of `SHA-256(key name || 0x0A || 0x01 || public key)`,
//! 0x01 being Ed25519's signature type. Keys are written as
//! `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>` (private) and
//! `<name>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>` (public, the one verifiers pin).
//!
//! [`open_note`] follows the spec's rules for verifiers: signatures by other keys (another name
//! or another key id) are ignored, every signature by the pinned key must verify, and at least
//! one must be present.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

/// The most signature lines [`open_note`] reads. The spec requires accepting at least 16 and
/// asks for a limit so a hostile note cannot make a verifier parse forever; Go's limit is 100.
pub const MAX_SIGNATURES: usize = 100;

/// The largest note, in bytes, [`open_note`] reads and [`sign_note`] writes. A checkpoint is a
/// few hundred bytes; the bound only keeps a hostile input from costing much.
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// Ed25519's signature type byte, in key ids and key texts.
const ALG_ED25519: u8 = 0x01;

/// The prefix of a private key's text form: it keeps a private key from being taken for (and
/// published as) a public one.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// The start of a signature line: an em dash (U+2014) and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, a text to sign or a signed note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key's text form is not `[PRIVATE+KEY+]<name>+<8 hex>+<base64 key data>`. The message
    /// never quotes the text, which may hold a private key.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A key's data is for a signature type other than Ed25519 (0x01).
    #[error("unsupported key algorithm {0:#04x}: only Ed25519 (0x01) is supported")]
    UnsupportedAlgorithm(u8),
    /// A key text's key id is not the one its name and public key give.
    #[error(
        "key {name}: the key id written is {written:08x} but the name and key give {computed:08x}"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// The key id in the text.
        written: u32,
        /// The key id of the name and public key.
        computed: u32,
    },
    /// A key name given to [`SigningKey::generate`] is empty or holds a space, `+` or control
    /// character.
    #[error(
        "invalid key name {0:?}: it must be non-empty, without spaces, '+' or control characters"
    )]
    InvalidName(String),
    /// The text given to [`sign_note`] cannot be a note's text.
    #[error("cannot sign the text: {0}")]
    InvalidText(&'static str),
    /// A signed note does not have the signed-note form.
    #[error("malformed note: {0}")]
    MalformedNote(&'static str),
    /// The note is well formed but has no signature by the pinned key: it is signed only by keys
    /// the verifier does not know (another name or key id).
    #[error("the note has no signature by the key {name}+{key_id:08x}")]
    UnknownKey {
        /// The pinned key's name.
        name: String,
        /// The pinned key's id.
        key_id: u32,
    },
    /// A signature by the pinned key's name and id does not verify: the text was altered, or the
    /// signature forged.
    #[error("a signature by the key {name}+{key_id:08x} does not verify")]
    BadSignature {
        /// The pinned key's name.
        name: String,
        /// The pinned key's id.
        key_id: u32,
    },
    /// The system's random number generator failed while generating a key.
    #[error("the system random number generator failed")]
    Rng,
}

/// An Ed25519 private key with its name: it signs notes.
///
/// `Debug` shows the name and key id only, never the seed.
pub struct SigningKey {
    name: String,
    key_id: u32,
    seed: [u8; 32],
    public_key: [u8; 32],
    key_pair: Ed25519KeyPair,
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        // `Ed25519KeyPair` is not `Clone`; the seed rebuilds the identical pair.
        let key_pair = Ed25519KeyPair::from_seed_unchecked(&self.seed)
            .expect("a seed that built a key pair builds it again");
        Self {
            name: self.name.clone(),
            key_id: self.key_id,
            seed: self.seed,
            public_key: self.public_key,
            key_pair,
        }
    }
}

impl SigningKey {
    /// A new random key named `name` (non-empty, no spaces, `+` or control characters; the spec
    /// recommends a schema-less URL such as `calltrail.example/audit`).
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        if !is_valid_name(name) {
            return Err(NoteError::InvalidName(name.to_owned()));
        }
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| NoteError::Rng)?;
        Self::from_seed(name.to_owned(), seed)
    }

    /// Parses `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || 32-byte seed)>`, trailing
    /// whitespace (a key file's final newline) allowed, and checks the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text
            .trim_end()
            .strip_prefix(PRIVATE_PREFIX)
            .ok_or(NoteError::MalformedKey(
                "a private key starts with PRIVATE+KEY+",
            ))?;
        let fields = parse_key_fields(rest)?;
        let key = Self::from_seed(fields.name.to_owned(), fields.key)?;
        // The id is a hash of the public key, which only exists once the seed is expanded.
        check_key_id(&key.name, fields.key_id, key.key_id)?;
        Ok(key)
    }

    fn from_seed(name: String, seed: [u8; 32]) -> Result<Self, NoteError> {
        let key_pair = Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| NoteError::MalformedKey("the seed is not an Ed25519 seed"))?;
        let public_key: [u8; 32] = key_pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| NoteError::MalformedKey("an Ed25519 public key is 32 bytes"))?;
        Ok(Self {
            key_id: key_id(&name, &public_key),
            name,
            seed,
            public_key,
            key_pair,
        })
    }

    /// The private key's text form, `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`
    /// (no trailing newline). It is a secret: store it with mode 0600.
    pub fn to_text(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_data(&self.seed)
        )
    }

    /// The matching public key.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            public_key: self.public_key,
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first 4 bytes, big-endian, of `SHA-256(name || 0x0A || 0x01 || public key)`.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 signature of `msg` (deterministic: the same key and message always give the
    /// same signature).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        // An Ed25519 signature is always 64 bytes, so the lengths match.
        out.copy_from_slice(self.key_pair.sign(msg).as_ref());
        out
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.key_id))
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key with its name: it verifies notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    public_key: [u8; 32],
}

impl VerifierKey {
    /// Parses `<name>+<key id, 8 hex>+<base64(0x01 || 32-byte public key)>`, trailing whitespace
    /// allowed, and checks the key id.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let fields = parse_key_fields(text.trim_end())?;
        check_key_id(fields.name, fields.key_id, key_id(fields.name, &fields.key))?;
        Ok(Self {
            name: fields.name.to_owned(),
            key_id: fields.key_id,
            public_key: fields.key,
        })
    }

    /// The public key's text form, `<name>+<key id>+<base64(0x01 || public key)>` (no trailing
    /// newline).
    pub fn to_text(&self) -> String {
        format!(
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            encode_key_data(&self.public_key)
        )
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id: the first 4 bytes, big-endian, of `SHA-256(name || 0x0A || 0x01 || public key)`.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether `sig` is a valid Ed25519 signature of `msg` by this key.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(msg, sig)
            .is_ok()
    }
}

/// Signs `text` with `key`: returns `text`, a blank line, and the signature line
/// `— <key name> <base64(key id || signature)>`.
///
/// `text` must be non-empty, end in a newline, and hold no blank line and no control character
/// other than newline.
pub fn sign_note(text: &str, key: &SigningKey) -> Result<String, NoteError> {
    check_text(text)?;
    let mut sig = Vec::with_capacity(4 + 64);
    sig.extend_from_slice(&key.key_id.to_be_bytes());
    sig.extend_from_slice(&key.sign(text.as_bytes()));
    let note = format!(
        "{text}\n{SIG_PREFIX}{} {}\n",
        key.name,
        STANDARD.encode(sig)
    );
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::InvalidText(
            "the signed note would be larger than MAX_NOTE_BYTES",
        ));
    }
    Ok(note)
}

/// Verifies `note` against the pinned key `verifier` and returns its text (everything before the
/// last blank line, final newline included).
///
/// Every signature line must be well formed. Signatures by other keys (another name or another
/// key id) are ignored, as the spec requires; every signature by `verifier`'s name and id must
/// verify ([`NoteError::BadSignature`]), and there must be at least one
/// ([`NoteError::UnknownKey`]).
pub fn open_note<'a>(note: &'a str, verifier: &VerifierKey) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::MalformedNote("larger than MAX_NOTE_BYTES"));
    }
    if note.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::MalformedNote(
            "holds a control character other than newline",
        ));
    }
    // The text may itself hold blank lines (the spec allows it): the signatures start after the
    // last one.
    let split = note.rfind("\n\n").ok_or(NoteError::MalformedNote(
        "no blank line before the signatures",
    ))?;
    let text = &note[..split + 1];
    let sigs = note[split + 2..]
        .strip_suffix('\n')
        .ok_or(NoteError::MalformedNote(
            "no signature lines, or the last does not end in a newline",
        ))?;
    let mut verified = false;
    for (i, line) in sigs.split('\n').enumerate() {
        if i == MAX_SIGNATURES {
            return Err(NoteError::MalformedNote(
                "more than MAX_SIGNATURES signatures",
            ));
        }
        let sig = parse_signature_line(line)?;
        // A key is its name and id together: a match on one alone is another key.
        if sig.name != verifier.name || sig.key_id != verifier.key_id {
            continue;
        }
        if !verifier.verify(text.as_bytes(), &sig.signature) {
            return Err(NoteError::BadSignature {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
            });
        }
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(NoteError::UnknownKey {
            name: verifier.name.clone(),
            key_id: verifier.key_id,
        })
    }
}

/// Whether `name` can be a key name: non-empty, with no Unicode space and no `+` (the spec), and
/// no other control character (a note may not hold one, so the key could sign nothing openable).
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c < ' ')
}

/// The key id of an Ed25519 key: the first 4 bytes, big-endian, of
/// `SHA-256(name || 0x0A || 0x01 || public key)`.
fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(public_key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn check_key_id(name: &str, written: u32, computed: u32) -> Result<(), NoteError> {
    if written == computed {
        Ok(())
    } else {
        Err(NoteError::KeyIdMismatch {
            name: name.to_owned(),
            written,
            computed,
        })
    }
}

/// `base64(0x01 || key)`, the key data of both text forms.
fn encode_key_data(key: &[u8; 32]) -> String {
    let mut data = [0u8; 33];
    data[0] = ALG_ED25519;
    data[1..].copy_from_slice(key);
    STANDARD.encode(data)
}

/// The fields of `<name>+<key id>+<key data>`, the part both key text forms share.
struct KeyFields<'a> {
    name: &'a str,
    /// The key id as written (not yet checked).
    key_id: u32,
    /// The 32 key bytes after the algorithm byte: a seed or a public key.
    key: [u8; 32],
}

fn parse_key_fields(text: &str) -> Result<KeyFields<'_>, NoteError> {
    // Only the first two '+' separate fields: '+' is also a base64 character.
    let mut fields = text.splitn(3, '+');
    let (Some(name), Some(id_hex), Some(data)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(NoteError::MalformedKey(
            "expected <name>+<key id>+<key data>",
        ));
    };
    if !is_valid_name(name) {
        return Err(NoteError::MalformedKey(
            "the key name is empty or holds a space, '+' or control character",
        ));
    }
    // from_str_radix alone would accept a sign, so check the digits first.
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey(
            "the key id is not 8 hexadecimal digits",
        ));
    }
    let key_id = u32::from_str_radix(id_hex, 16)
        .map_err(|_| NoteError::MalformedKey("the key id is not 8 hexadecimal digits"))?;
    let data = STANDARD
        .decode(data)
        .map_err(|_| NoteError::MalformedKey("the key data is not canonical padded base64"))?;
    let key = match data.split_first() {
        None => return Err(NoteError::MalformedKey("the key data is empty")),
        Some((&ALG_ED25519, key)) => key
            .try_into()
            .map_err(|_| NoteError::MalformedKey("an Ed25519 key is 32 bytes"))?,
        Some((&alg, _)) => return Err(NoteError::UnsupportedAlgorithm(alg)),
    };
    Ok(KeyFields { name, key_id, key })
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::InvalidText("the text is empty"));
    }
    if !text.ends_with('\n') {
        return Err(NoteError::InvalidText("the text does not end in a newline"));
    }
    // The spec allows blank lines in a text, but none of ours has one, and without them the
    // text is also everything before the note's first blank line: no reader can split it
    // elsewhere.
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(NoteError::InvalidText("the text has a blank line"));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::InvalidText(
            "the text holds a control character other than newline",
        ));
    }
    Ok(())
}

/// One signature line's parts.
struct SignatureLine<'a> {
    name: &'a str,
    key_id: u32,
    /// The signature proper, after the key id.
    signature: Vec<u8>,
}

/// Parses `— <name> <base64(key id || signature)>` (without its newline).
fn parse_signature_line(line: &str) -> Result<SignatureLine<'_>, NoteError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(NoteError::MalformedNote(
            "a signature line does not start with an em dash and a space",
        ))?;
    let (name, b64) = rest.split_once(' ').ok_or(NoteError::MalformedNote(
        "a signature line has no space between the key name and the signature",
    ))?;
    if !is_valid_name(name) {
        return Err(NoteError::MalformedNote(
            "a signature line's key name is empty or holds a space or '+'",
        ));
    }
    let mut signature = STANDARD
        .decode(b64)
        .map_err(|_| NoteError::MalformedNote("a signature is not canonical padded base64"))?;
    // A key id and at least one byte of signature, as Go's reader requires.
    if signature.len() < 5 {
        return Err(NoteError::MalformedNote(
            "a signature is shorter than a key id and one byte",
        ));
    }
    let key_id = u32::from_be_bytes([signature[0], signature[1], signature[2], signature[3]]);
    signature.drain(..4);
    Ok(SignatureLine {
        name,
        key_id,
        signature,
    })
}

#[cfg(test)]
#[path = "note_tests.rs"]
mod tests;
