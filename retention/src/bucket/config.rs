//! The `[bucket]` configuration section: which S3-compatible bucket holds a copy of the sealed
//! store, and whether its Object Lock guards that copy.
//!
//! Credentials are never part of the configuration file: they come from the standard
//! environment variables `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary
//! credentials, `AWS_SESSION_TOKEN` ([`credentials_from_env`]), and are never logged.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::client::ClientOptions;
use serde::Deserialize;

use super::object_lock::{BucketConfig, LockMode, ObjectLockClient};
use super::sigv4::Credentials;
use crate::{Error, Result};

/// The environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// The environment variable holding the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The environment variable holding the session token of temporary credentials.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// Whether, and how, pushed segments are locked (S3 Object Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockSetting {
    /// No Object Lock: the bucket's own permissions are the only guard.
    #[default]
    Off,
    /// GOVERNANCE retention: principals with `s3:BypassGovernanceRetention` may lift it.
    Governance,
    /// COMPLIANCE retention: nobody, the root account included, can delete a locked version
    /// before its retain-until date (WORM, SEC 17a-4(f)).
    Compliance,
}

impl ObjectLockSetting {
    /// The lock mode pushed versions get; `None` when off.
    pub fn mode(self) -> Option<LockMode> {
        match self {
            Self::Off => None,
            Self::Governance => Some(LockMode::Governance),
            Self::Compliance => Some(LockMode::Compliance),
        }
    }
}

/// The `[bucket]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketSettings {
    /// The S3 endpoint URL: `https://s3.eu-west-1.amazonaws.com`, or an S3-compatible server's
    /// (`http://minio.internal:9000`). Required.
    pub endpoint: String,
    /// The region requests are signed for. Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    /// The bucket name. Required.
    pub bucket: String,
    /// A key prefix the store's tree lives under (`calltrail/prod`), without leading or
    /// trailing `/`. Default empty: the tree starts at the bucket's root.
    #[serde(default)]
    pub prefix: String,
    /// Path-style addressing (`{endpoint}/{bucket}/{key}`), which S3-compatible servers
    /// expect; `false` for virtual-hosted addressing (`{bucket}.{host}`). Default true.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Allow a plain `http://` endpoint (test servers, a loopback gateway). Default false: an
    /// `http://` endpoint is refused unless this is set.
    #[serde(default)]
    pub allow_http: bool,
    /// S3 Object Lock of pushed segments: `off`, `governance` or `compliance`. Each segment's
    /// version is locked until the segment's retention expiry. Default `off`.
    #[serde(default)]
    pub object_lock: ObjectLockSetting,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn default_true() -> bool {
    true
}

fn bad(key: &str, message: impl Into<String>) -> Error {
    Error::Config {
        key: format!("bucket.{key}"),
        message: message.into(),
    }
}

impl BucketSettings {
    /// Checks every key; the error names it (`bucket.endpoint`, …).
    pub fn validate(&self) -> Result<()> {
        let endpoint = self.endpoint.trim();
        let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
            rest
        } else if let Some(rest) = endpoint.strip_prefix("http://") {
            if !self.allow_http {
                return Err(bad(
                    "endpoint",
                    "is plain http://; set bucket.allow_http = true to allow it",
                ));
            }
            rest
        } else {
            return Err(bad("endpoint", "must start with https:// (or http://)"));
        };
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || endpoint.contains(char::is_whitespace) {
            return Err(bad("endpoint", "must name a host"));
        }
        if self.region.is_empty() {
            return Err(bad("region", "must not be empty"));
        }
        let name_ok = (3..=63).contains(&self.bucket.len())
            && self
                .bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !name_ok {
            return Err(bad(
                "bucket",
                "must be 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        if self.prefix.starts_with('/')
            || self.prefix.ends_with('/')
            || self.prefix.contains("//")
            || self.prefix.split('/').any(|c| c == "." || c == "..")
        {
            return Err(bad(
                "prefix",
                "must be a relative key prefix without leading, trailing or doubled '/'",
            ));
        }
        Ok(())
    }

    /// `s3://{bucket}/{prefix}/` (or `s3://{bucket}/` without a prefix): the store's root as
    /// an object store URL.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}/", self.bucket)
        } else {
            format!("s3://{}/{}/", self.bucket, self.prefix)
        }
    }

    /// The object key of `relative` (a path relative to the store root, `/`-separated).
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_owned()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// `object_store`'s S3 store on the bucket (SHA-256 checksum on every PUT: Object Lock
    /// buckets refuse a PUT without an integrity header) and the Object Lock client of the
    /// same bucket, both signing with `credentials`.
    pub fn connect(&self, credentials: Credentials) -> Result<Bucket> {
        self.validate()?;
        let options = ClientOptions::new().with_allow_http(self.allow_http);
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(self.endpoint.trim())
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_virtual_hosted_style_request(!self.path_style)
            .with_allow_http(self.allow_http)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_checksum_algorithm(Checksum::SHA256)
            .with_client_options(options.clone());
        if let Some(token) = &credentials.session_token {
            builder = builder.with_token(token);
        }
        let store = builder
            .build()
            .map_err(|e| bad("endpoint", format!("cannot address the bucket: {e}")))?;
        let lock = ObjectLockClient::new(
            BucketConfig {
                endpoint: self.endpoint.trim().to_owned(),
                region: self.region.clone(),
                bucket: self.bucket.clone(),
                credentials,
                path_style: self.path_style,
            },
            &options,
        )
        .map_err(|e| bad("endpoint", e.to_string()))?;
        Ok(Bucket {
            store: Arc::new(store),
            lock,
            settings: self.clone(),
        })
    }
}

/// A connected bucket: the object store, the Object Lock client, and the settings.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Puts, gets, lists and heads objects.
    pub store: Arc<AmazonS3>,
    /// Object Lock operations on the same bucket.
    pub lock: ObjectLockClient,
    /// The settings it was built from.
    pub settings: BucketSettings,
}

impl Bucket {
    /// The store as a trait object (for DataFusion's object store registry).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }
}

/// Credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional
/// `AWS_SESSION_TOKEN`; the error names the variable that is missing.
pub fn credentials_from_env() -> Result<Credentials> {
    credentials_from(|name| std::env::var(name).ok())
}

/// Credentials from the variables `lookup` returns (an empty value counts as missing).
pub fn credentials_from(lookup: impl Fn(&str) -> Option<String>) -> Result<Credentials> {
    let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
    let required = |name: &str| {
        get(name).ok_or_else(|| Error::Config {
            key: name.to_owned(),
            message: "environment variable is not set: the bucket's credentials come from the \
                      environment, never from the configuration file"
                .to_owned(),
        })
    };
    Ok(Credentials {
        access_key_id: required(ENV_ACCESS_KEY_ID)?,
        secret_access_key: required(ENV_SECRET_ACCESS_KEY)?,
        session_token: get(ENV_SESSION_TOKEN),
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
