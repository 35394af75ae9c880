//! S3 Object Lock operations that `object_store` does not offer: an object version's retention
//! (set, read back), deleting one specific version, and a bucket's Object Lock configuration.
//!
//! A store keeps a sealed segment as one object version and locks that exact version (the
//! `version` of `object_store`'s `PutResult`) with [`ObjectLockClient::put_retention`]. In
//! COMPLIANCE mode nobody, the bucket owner and the root account included, can delete that
//! version or shorten its retention until the date passes; in GOVERNANCE mode a principal with
//! `s3:BypassGovernanceRetention` can. A locked version refuses [`ObjectLockClient::delete_version`]
//! with 403 `AccessDenied`, which this client reports as [`BucketError::Locked`].
//!
//! Requests go through `object_store`'s HTTP client, built from the same [`ClientOptions`] as
//! the store (TLS roots, proxy, timeouts, `allow_http`), signed with [`super::sigv4`]. Each
//! operation is one request, not retried: its callers (start-up checks, sealing, retention
//! runs) retry on their own schedule.
//!
//! Wire forms (S3 API 2006-03-01):
//! - `PUT /{bucket}/{key}?retention[&versionId=V]`, body
//!   `<Retention><Mode>COMPLIANCE|GOVERNANCE</Mode><RetainUntilDate>ISO 8601</RetainUntilDate></Retention>`,
//!   with `Content-MD5` (S3 refuses Object Lock writes without an integrity header);
//! - `GET /{bucket}/{key}?retention[&versionId=V]`: the same XML, or 404
//!   `NoSuchObjectLockConfiguration` when the version has no retention (from a server that
//!   ignores the subresource, `HEAD /{bucket}/{key}[?versionId=V]` and its
//!   `x-amz-object-lock-mode` / `x-amz-object-lock-retain-until-date` headers);
//! - `DELETE /{bucket}/{key}?versionId=V`: 204, or 403 `AccessDenied` while locked;
//! - `GET /{bucket}?object-lock`: `<ObjectLockConfiguration><ObjectLockEnabled>Enabled…`, or
//!   404 `ObjectLockConfigurationNotFoundError`;
//! - `PUT /{bucket}` with `x-amz-bucket-object-lock-enabled: true` (and a
//!   `CreateBucketConfiguration` naming the region outside `us-east-1`).
//!
//! Virtual-hosted addressing puts the bucket in the host name (`{bucket}.{endpoint host}`)
//! instead of the path.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest, HttpRequestBody,
    HttpResponse, ReqwestConnector,
};
use sha2::{Digest, Sha256};

use super::sigv4::{Credentials, SignError, Signer, X_AMZ_CONTENT_SHA256, uri_encode};
use super::wire::{
    content_md5, is_xml, leaf, parse_retention, retention_from_headers, retention_xml,
    status_error, xml_escape, xml_leaves,
};

/// Where the bucket is and who signs for it.
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// The endpoint URL: `https://s3.eu-west-1.amazonaws.com`, or an S3-compatible server's
    /// (`http://127.0.0.1:9000`; plain HTTP also needs `ClientOptions::with_allow_http`). A path
    /// after the host is kept as a prefix.
    pub endpoint: String,
    /// The region the requests are signed for (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// The bucket name.
    pub bucket: String,
    /// The credentials requests are signed with.
    pub credentials: Credentials,
    /// Path-style addressing (`{endpoint}/{bucket}/{key}`), which S3-compatible servers expect;
    /// `false` for virtual-hosted addressing (`{bucket}.{endpoint host}/{key}`).
    pub path_style: bool,
}

/// An Object Lock retention mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Principals with `s3:BypassGovernanceRetention` may shorten or remove the lock.
    Governance,
    /// Nobody may delete the version or shorten the lock before it expires (WORM).
    Compliance,
}

impl LockMode {
    /// The mode's name on the wire: `GOVERNANCE` or `COMPLIANCE`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LockMode {
    type Err = BucketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "GOVERNANCE" => Ok(LockMode::Governance),
            "COMPLIANCE" => Ok(LockMode::Compliance),
            other => Err(BucketError::Response(format!(
                "unknown Object Lock mode {other:?}"
            ))),
        }
    }
}

/// An object version's retention: its mode and the instant it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// The lock mode.
    pub mode: LockMode,
    /// Until when the version is locked.
    pub retain_until: DateTime<Utc>,
}

/// Why an Object Lock operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The configuration cannot address a bucket (a bad endpoint URL, an empty bucket name).
    #[error("invalid bucket configuration: {0}")]
    Config(String),
    /// The request cannot be built from the arguments (an empty key or version id).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// `object_store` could not build its HTTP client from the client options.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] object_store::Error),
    /// The request could not be signed.
    #[error("cannot sign the request: {0}")]
    Sign(#[from] SignError),
    /// The request did not get an answer (connection, TLS, timeout).
    #[error("the bucket did not answer: {0}")]
    Transport(#[from] HttpError),
    /// The object version is under Object Lock: the store refused to delete it.
    #[error("object {key} version {version_id} is locked (Object Lock): {message}")]
    Locked {
        /// The object key.
        key: String,
        /// The version the store refused to delete.
        version_id: String,
        /// The store's message.
        message: String,
    },
    /// The bucket exists without Object Lock (which cannot be turned on for an existing bucket
    /// through this client).
    #[error("bucket {bucket} exists without Object Lock")]
    LockNotEnabled {
        /// The bucket's name.
        bucket: String,
    },
    /// The store answered with an error status.
    #[error("the bucket answered {status} {code}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The S3 error code (`NoSuchKey`, `InvalidRequest`, …), or the status reason when the
        /// answer had no error document.
        code: String,
        /// The S3 error message, possibly empty.
        message: String,
    },
    /// The store answered success with a body this client cannot read.
    #[error("unreadable answer from the bucket: {0}")]
    Response(String),
}

impl BucketError {
    /// The S3 error code of a [`BucketError::Status`] (`AccessDenied` for [`BucketError::Locked`]).
    pub fn code(&self) -> Option<&str> {
        match self {
            BucketError::Status { code, .. } => Some(code),
            BucketError::Locked { .. } => Some("AccessDenied"),
            _ => None,
        }
    }
}

/// The Object Lock client of one bucket.
#[derive(Debug, Clone)]
pub struct ObjectLockClient {
    http: HttpClient,
    signer: Signer,
    scheme: String,
    /// `host[:port]` of the endpoint, the bucket prepended when virtual-hosted.
    authority: String,
    /// The endpoint's path, without a trailing `/` (usually empty).
    prefix: String,
    bucket: String,
    path_style: bool,
}

impl ObjectLockClient {
    /// A client for `config`'s bucket over `object_store`'s HTTP client built from `options`.
    pub fn new(config: BucketConfig, options: &ClientOptions) -> Result<Self, BucketError> {
        let http = ReqwestConnector::default()
            .connect(options)
            .map_err(BucketError::Client)?;
        Self::with_http_client(config, http)
    }

    /// A client for `config`'s bucket over an existing `object_store` HTTP client.
    pub fn with_http_client(config: BucketConfig, http: HttpClient) -> Result<Self, BucketError> {
        let endpoint: Uri = config.endpoint.parse().map_err(|e| {
            BucketError::Config(format!("endpoint {:?} is not a URL: {e}", config.endpoint))
        })?;
        let scheme = match endpoint.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_owned(),
            _ => {
                return Err(BucketError::Config(format!(
                    "endpoint {:?} must start with http:// or https://",
                    config.endpoint
                )));
            }
        };
        let Some(authority) = endpoint.authority() else {
            return Err(BucketError::Config(format!(
                "endpoint {:?} has no host",
                config.endpoint
            )));
        };
        if config.bucket.is_empty() || config.bucket.contains('/') {
            return Err(BucketError::Config(format!(
                "bucket name {:?} is empty or holds '/'",
                config.bucket
            )));
        }
        if config.region.is_empty() {
            return Err(BucketError::Config("the region is empty".to_owned()));
        }
        let authority = if config.path_style {
            authority.to_string()
        } else {
            format!("{}.{authority}", config.bucket)
        };
        Ok(Self {
            http,
            signer: Signer::new(config.credentials, config.region),
            scheme,
            authority,
            prefix: endpoint.path().trim_end_matches('/').to_owned(),
            bucket: config.bucket,
            path_style: config.path_style,
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Locks `key` (the version `version_id`, or the current version when `None`) in `mode`
    /// until `retain_until`. The store refuses to shorten a COMPLIANCE lock, or a GOVERNANCE one
    /// without bypass permission, and refuses a date in the past.
    pub async fn put_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
        mode: LockMode,
        retain_until: DateTime<Utc>,
    ) -> Result<(), BucketError> {
        let body = retention_xml(mode, retain_until);
        let mut headers = HeaderMap::new();
        headers.insert("content-md5", content_md5(body.as_bytes()));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
        let query = version_query("retention", version_id)?;
        let (status, answer) = self
            .send(Method::PUT, Some(key), &query, headers, Bytes::from(body))
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(status_error(status, &answer))
        }
    }

    /// The retention of `key` (the version `version_id`, or the current version when `None`);
    /// `None` when that version has none.
    ///
    /// Asks `GetObjectRetention` (`GET ?retention`). A server that ignores that subresource and
    /// answers with the object itself (not XML; moto 5.2 does) is asked `HeadObject` instead,
    /// whose `x-amz-object-lock-mode` and `x-amz-object-lock-retain-until-date` headers S3 also
    /// sends; the object's bytes are left unread.
    pub async fn get_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Retention>, BucketError> {
        let query = version_query("retention", version_id)?;
        let response = self
            .execute(
                Method::GET,
                Some(key),
                &query,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        let status = response.status();
        if status.is_success() && !is_xml(response.headers()) {
            drop(response);
            return self.head_retention(key, version_id).await;
        }
        let answer = response.into_body().bytes().await?;
        if status.is_success() {
            return parse_retention(&answer).map(Some);
        }
        let error = status_error(status, &answer);
        if status == StatusCode::NOT_FOUND && error.code() == Some("NoSuchObjectLockConfiguration")
        {
            return Ok(None);
        }
        Err(error)
    }

    /// The retention `HeadObject` reports for `key` (the version `version_id`, or the current
    /// version when `None`), from its `x-amz-object-lock-*` headers; `None` without them. S3
    /// sends them only to principals allowed `s3:GetObjectRetention`.
    async fn head_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<Retention>, BucketError> {
        let mut query = Vec::new();
        if let Some(v) = version_id {
            query.push(("versionId", v));
        }
        let response = self
            .execute(
                Method::HEAD,
                Some(key),
                &query,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        if !response.status().is_success() {
            return Err(status_error(response.status(), b""));
        }
        retention_from_headers(response.headers())
    }

    /// Deletes the version `version_id` of `key` for good (no delete marker).
    /// [`BucketError::Locked`] when the store refuses because the version is locked (403
    /// `AccessDenied`: S3 answers the same to a principal lacking `s3:DeleteObjectVersion`, and
    /// the message tells the two apart).
    pub async fn delete_version(&self, key: &str, version_id: &str) -> Result<(), BucketError> {
        if version_id.is_empty() {
            return Err(BucketError::InvalidRequest(
                "the version id to delete is empty".to_owned(),
            ));
        }
        let query = [("versionId", version_id)];
        let (status, answer) = self
            .send(
                Method::DELETE,
                Some(key),
                &query,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        if status.is_success() {
            return Ok(());
        }
        match status_error(status, &answer) {
            BucketError::Status {
                status: 403,
                code,
                message,
            } if code == "AccessDenied" || code == "Forbidden" => Err(BucketError::Locked {
                key: key.to_owned(),
                version_id: version_id.to_owned(),
                message,
            }),
            other => Err(other),
        }
    }

    /// Whether the bucket has Object Lock enabled (`ObjectLockEnabled` = `Enabled`). Checked at
    /// start-up so a configuration asking for WORM storage never runs on a bucket without it.
    pub async fn bucket_lock_enabled(&self) -> Result<bool, BucketError> {
        let query = [("object-lock", "")];
        let (status, answer) = self
            .send(Method::GET, None, &query, HeaderMap::new(), Bytes::new())
            .await?;
        if status.is_success() {
            let leaves = xml_leaves(&answer)?;
            return Ok(leaf(&leaves, "ObjectLockConfiguration/ObjectLockEnabled")
                .is_some_and(|v| v == "Enabled"));
        }
        let error = status_error(status, &answer);
        if status == StatusCode::NOT_FOUND
            && error.code() == Some("ObjectLockConfigurationNotFoundError")
        {
            return Ok(false);
        }
        Err(error)
    }

    /// Creates the bucket with Object Lock enabled (which also turns versioning on), then
    /// checks that the lock is on. S3 refuses to create a bucket another account owns
    /// (`BucketAlreadyExists`) and, outside `us-east-1`, one this account owns
    /// (`BucketAlreadyOwnedByYou`); in `us-east-1` it answers 200 for a bucket this account
    /// already owns and leaves it as it was, hence the check: an existing bucket without Object
    /// Lock is [`BucketError::LockNotEnabled`], one with it is success.
    pub async fn create_bucket_with_lock(&self) -> Result<(), BucketError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-amz-bucket-object-lock-enabled",
            HeaderValue::from_static("true"),
        );
        let region = self.signer.region();
        let body = if region == "us-east-1" {
            Bytes::new()
        } else {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            Bytes::from(format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                xml_escape(region)
            ))
        };
        let (status, answer) = self.send(Method::PUT, None, &[], headers, body).await?;
        if !status.is_success() {
            return Err(status_error(status, &answer));
        }
        if self.bucket_lock_enabled().await? {
            Ok(())
        } else {
            Err(BucketError::LockNotEnabled {
                bucket: self.bucket.clone(),
            })
        }
    }

    /// Builds and signs one request at `now`: the object `key` (the bucket itself when `None`),
    /// the query parameters, extra headers, and the body.
    pub(crate) fn build_request(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        mut headers: HeaderMap,
        body: Bytes,
        now: DateTime<Utc>,
    ) -> Result<HttpRequest, BucketError> {
        let mut path = self.prefix.clone();
        if self.path_style {
            path.push('/');
            path.push_str(&self.bucket);
        }
        path.push('/');
        if let Some(key) = key {
            if key.is_empty() {
                return Err(BucketError::InvalidRequest(
                    "the object key is empty".to_owned(),
                ));
            }
            path.push_str(key);
        }
        let mut url = format!(
            "{}://{}{}",
            self.scheme,
            self.authority,
            uri_encode(path.as_bytes(), false)
        );
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&uri_encode(name.as_bytes(), true));
            if !value.is_empty() {
                url.push('=');
                url.push_str(&uri_encode(value.as_bytes(), true));
            }
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| BucketError::InvalidRequest(format!("URL {url:?}: {e}")))?;
        let payload_hash = hex::encode(Sha256::digest(&body));
        headers.insert(
            X_AMZ_CONTENT_SHA256,
            HeaderValue::from_str(&payload_hash)
                .map_err(|e| BucketError::InvalidRequest(e.to_string()))?,
        );
        self.signer
            .sign(&method, &uri, &mut headers, &payload_hash, now)?;
        let mut request = http::Request::new(HttpRequestBody::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Sends one request, signed now; the answer's body unread.
    async fn execute(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, BucketError> {
        let request = self.build_request(method, key, query, headers, body, Utc::now())?;
        Ok(self.http.execute(request).await?)
    }

    /// Sends one request, signed now, and reads the whole answer (S3's answers to these
    /// operations are small XML documents).
    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), BucketError> {
        let response = self.execute(method, key, query, headers, body).await?;
        let status = response.status();
        let body = response.into_body().bytes().await?;
        Ok((status, body))
    }
}

/// `[(subresource, ""), ("versionId", v)]`, the version only when given (and not empty).
fn version_query<'a>(
    subresource: &'a str,
    version_id: Option<&'a str>,
) -> Result<Vec<(&'a str, &'a str)>, BucketError> {
    let mut query = vec![(subresource, "")];
    match version_id {
        Some("") => {
            return Err(BucketError::InvalidRequest(
                "the version id is empty".to_owned(),
            ));
        }
        Some(v) => query.push(("versionId", v)),
        None => {}
    }
    Ok(query)
}

#[cfg(test)]
#[path = "object_lock_tests.rs"]
mod tests;
