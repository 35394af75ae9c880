//! Tool arguments and results are sensitive (customer data, secrets, prompts). By default only
//! their SHA-256 and size are kept, so an auditor can prove what was sent without Calltrail
//! holding it; `full` keeps the content, `none` keeps nothing.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::record::Payload;

/// What is kept of tool arguments and results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitivePolicy {
    /// SHA-256 and size only (default).
    #[default]
    Hash,
    /// The content as well as its hash and size.
    Full,
    /// Nothing at all.
    None,
}

impl SensitivePolicy {
    /// What to store of one payload under this policy.
    pub fn keep(self, content: &str) -> Payload {
        match self {
            SensitivePolicy::None => Payload::default(),
            SensitivePolicy::Hash | SensitivePolicy::Full => Payload {
                sha256: Some(hex::encode(Sha256::digest(content.as_bytes()))),
                size: Some(content.len() as i64),
                content: (self == SensitivePolicy::Full).then(|| content.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keeps_no_content() {
        let p = SensitivePolicy::Hash.keep("{\"card\":\"4111\"}");
        assert_eq!(p.size, Some(15));
        assert_eq!(p.content, None);
        assert_eq!(p.sha256.as_deref().map(str::len), Some(64));
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            SensitivePolicy::Hash.keep("abc").sha256.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn full_and_none() {
        assert_eq!(
            SensitivePolicy::Full.keep("x").content.as_deref(),
            Some("x")
        );
        assert_eq!(SensitivePolicy::None.keep("x"), Payload::default());
    }
}
