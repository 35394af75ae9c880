//! Glob matching with `*` (any run) and `?` (one byte), ASCII case-insensitive, used by the tool
//! catalog and the service-account / client-id patterns.

/// A compiled pattern: `*` any run, `?` one byte, ASCII case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: Vec<u8>,
    source: String,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        Self {
            pattern: pattern.to_ascii_lowercase().into_bytes(),
            source: pattern.to_string(),
        }
    }

    /// The pattern as written in the configuration.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Iterative matcher with single-star backtracking: linear in practice, no recursion and no
    /// allocation (it runs for every record). Case folding is ASCII-only; `?` matches one byte.
    pub fn matches(&self, text: &str) -> bool {
        let t = text.as_bytes();
        let p = &self.pattern;
        let (mut ti, mut pi) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti].to_ascii_lowercase()) {
                ti += 1;
                pi += 1;
            } else if pi < p.len() && p[pi] == b'*' {
                star = Some((pi, ti));
                pi += 1;
            } else if let Some((sp, st)) = star {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn matches_stars_and_questions() {
        assert!(Glob::new("svc-*").matches("svc-payments"));
        assert!(Glob::new("svc-*").matches("SVC-x"));
        assert!(!Glob::new("svc-*").matches("alice"));
        assert!(Glob::new("*-bot").matches("deploy-bot"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a?c").matches("abc"));
        assert!(!Glob::new("a?c").matches("ac"));
        assert!(Glob::new("get_*_by_*").matches("get_customer_by_id"));
        assert!(!Glob::new("get_*_by_*").matches("get_customer"));
        assert!(Glob::new("*@*.iam.gserviceaccount.com").matches("x@p.iam.gserviceaccount.com"));
        assert!(Glob::new("exact").matches("EXACT"));
        assert!(!Glob::new("exact").matches("exactly"));
    }
}
