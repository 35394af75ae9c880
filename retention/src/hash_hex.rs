//! Hashes as 64 lowercase hex digits, the form every JSON file and footer of the store uses,
//! and serde adapters for one hash or a list.

use crate::merkle::Hash;

/// A hash from 64 hex digits; `None` for anything else.
pub(crate) fn parse(s: &str) -> Option<Hash> {
    let mut h = [0u8; 32];
    hex::decode_to_slice(s, &mut h).ok()?;
    Some(h)
}

/// `#[serde(with = "crate::hash_hex::one")]` for a [`Hash`] field.
pub(crate) mod one {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub(crate) fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).ok_or_else(|| serde::de::Error::custom("not a 64-digit hex hash"))
    }
}

/// `#[serde(with = "crate::hash_hex::list")]` for a `Vec<Hash>` field.
pub(crate) mod list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::merkle::Hash;

    pub(crate) fn serialize<S: Serializer>(h: &[Hash], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<String> = h.iter().map(hex::encode).collect();
        v.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| super::parse(s))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| serde::de::Error::custom("not a list of 64-digit hex hashes"))
    }
}
