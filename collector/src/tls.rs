//! TLS for the OTLP receivers, and client certificates (mTLS) as ingest identities.
//!
//! One `[receivers.tls]` section serves both receivers: the same certificate, key and client
//! CA, with ALPN `h2` + `http/1.1` on the OTLP/HTTP port and `h2` alone on the OTLP/gRPC port.
//! Only the `ring` crypto provider is used, so the build needs no cmake.
//!
//! With `client_ca_file`, clients are asked for a certificate, which is verified against that
//! CA (chain, validity, client-auth usage). Under `client_auth = "required"` the handshake
//! refuses clients without a valid one; under `"optional"` a client may connect without one
//! (and then needs a bearer token as usual), while a certificate that does not verify still
//! fails the handshake. The subject DN of a verified certificate, in RFC 4514 form
//! (`CN=gateway-eu-1,O=Bank`), is the client's identity: see [`crate::auth`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use x509_cert::Certificate;
use x509_cert::der::Decode;

const CERT_FILE: &str = "receivers.tls.cert_file";
const KEY_FILE: &str = "receivers.tls.key_file";
const CLIENT_CA_FILE: &str = "receivers.tls.client_ca_file";
const CLIENT_AUTH: &str = "receivers.tls.client_auth";
const HANDSHAKE_TIMEOUT: &str = "receivers.tls.handshake_timeout_ms";

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Clients are not asked for a certificate (the default without `client_ca_file`).
    None,
    /// A client may present a certificate; a verified one authenticates its requests.
    Optional,
    /// Every client must present a certificate that verifies against `client_ca_file` (the
    /// default with `client_ca_file`).
    Required,
}

/// The `[receivers.tls]` configuration section. Relative paths are relative to the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM file with the CA certificate(s) client certificates must chain to. Setting it turns
    /// client certificate verification on.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `none`, `optional` or `required`. Default: `required` when `client_ca_file` is set,
    /// `none` otherwise.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// How long a client may take to complete the TLS handshake, in milliseconds; slower ones
    /// are disconnected (they never hold up other clients). Default 10000.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
}

fn default_handshake_timeout_ms() -> u64 {
    10_000
}

/// Why the TLS configuration could not be loaded. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{key}: cannot read {}: {error}", path.display())]
    Read {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error (in the message, so not also a `source`).
        error: std::io::Error,
    },
    /// A file was read but its content is not usable.
    #[error("{key}: {}: {problem}", path.display())]
    Invalid {
        /// The configuration key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it (never any key material).
        problem: String,
    },
}

/// The rustls server configurations of both receivers, built from a [`TlsConfig`].
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// For the OTLP/HTTP receiver: ALPN `h2` and `http/1.1`.
    pub http: Arc<ServerConfig>,
    /// For the OTLP/gRPC receiver: ALPN `h2`.
    pub grpc: Arc<ServerConfig>,
    /// Budget for one handshake.
    pub handshake_timeout: Duration,
}

impl TlsConfig {
    /// The effective client authentication: the configured one, or the default for whether
    /// `client_ca_file` is set.
    pub fn client_auth(&self) -> ClientAuth {
        match (self.client_auth, &self.client_ca_file) {
            (Some(mode), _) => mode,
            (None, Some(_)) => ClientAuth::Required,
            (None, None) => ClientAuth::None,
        }
    }

    /// True when client certificates are verified (and so can authenticate requests).
    pub fn verifies_clients(&self) -> bool {
        self.client_auth() != ClientAuth::None
    }

    /// Checks the settings without reading any file; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, msg: &str| Err((key.to_string(), msg.to_string()));
        if self.cert_file.as_os_str().is_empty() {
            return err(CERT_FILE, "must not be empty");
        }
        if self.key_file.as_os_str().is_empty() {
            return err(KEY_FILE, "must not be empty");
        }
        match (self.client_auth(), &self.client_ca_file) {
            (ClientAuth::None, Some(_)) => {
                return err(
                    CLIENT_AUTH,
                    "is \"none\" but receivers.tls.client_ca_file is set: use \"optional\" or \"required\", or remove client_ca_file",
                );
            }
            (ClientAuth::Optional | ClientAuth::Required, None) => {
                return err(
                    CLIENT_CA_FILE,
                    "must be set when receivers.tls.client_auth is \"optional\" or \"required\"",
                );
            }
            (_, Some(p)) if p.as_os_str().is_empty() => {
                return err(CLIENT_CA_FILE, "must not be empty");
            }
            _ => {}
        }
        if !(100..=60_000).contains(&self.handshake_timeout_ms) {
            return err(HANDSHAKE_TIMEOUT, "must be between 100 and 60000");
        }
        Ok(())
    }

    /// Reads the certificate, key and client CA files and builds both receivers' server
    /// configurations.
    pub fn load(&self) -> Result<ServerTls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = read_certs(CERT_FILE, &self.cert_file)?;
        let key = read_key(KEY_FILE, &self.key_file)?;
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(KEY_FILE, &self.key_file, e.to_string()))?;
        let builder = match (&self.client_ca_file, self.client_auth()) {
            (Some(ca), mode @ (ClientAuth::Optional | ClientAuth::Required)) => {
                builder.with_client_cert_verifier(client_verifier(ca, mode, provider)?)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut http = builder.with_single_cert(chain, key).map_err(|e| {
            let problem = match e {
                rustls::Error::InconsistentKeys(_) => {
                    "this private key does not belong to the certificate in receivers.tls.cert_file"
                        .to_string()
                }
                other => format!("unusable private key or certificate: {other}"),
            };
            invalid(KEY_FILE, &self.key_file, problem)
        })?;
        let mut grpc = http.clone();
        http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        Ok(ServerTls {
            http: Arc::new(http),
            grpc: Arc::new(grpc),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms),
        })
    }
}

pub(crate) fn invalid(key: &'static str, path: &Path, problem: String) -> TlsError {
    TlsError::Invalid {
        key,
        path: path.to_path_buf(),
        problem,
    }
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        key,
        path: path.to_path_buf(),
        error,
    })
}

/// Describes a PEM error without quoting the file (which may hold a private key).
pub(crate) fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        pem::Error::SectionTooLarge => "a PEM section is too large".into(),
        pem::Error::NoItemsFound => "nothing usable found".into(),
        other => format!("invalid PEM: {other}"),
    }
}

/// Every `CERTIFICATE` block of a PEM file; at least one. `key` names the setting in errors
/// (the receivers', syslog's and OTLP out's TLS files all load through here).
pub(crate) fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, pem_problem(&e)))?;
    if certs.is_empty() {
        return Err(invalid(
            key,
            path,
            "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_key(key: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound => {
                "no PEM private key (PKCS#8, PKCS#1 or SEC1 PRIVATE KEY block) found".into()
            }
            other => pem_problem(&other),
        };
        invalid(key, path, problem)
    })
}

/// The certificates of a PEM file as trust anchors, each checked to be a usable CA.
pub(crate) fn read_roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, ca) in read_certs(key, path)?.into_iter().enumerate() {
        roots.add(ca).map_err(|e| {
            invalid(
                key,
                path,
                format!("certificate #{} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}

fn client_verifier(
    path: &Path,
    mode: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = read_roots(CLIENT_CA_FILE, path)?;
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if mode == ClientAuth::Optional {
        builder.allow_unauthenticated()
    } else {
        builder
    };
    builder
        .build()
        .map_err(|e| invalid(CLIENT_CA_FILE, path, e.to_string()))
}

/// The subject DN of the verified client certificate of a finished handshake, in RFC 4514 form
/// (`CN=gateway-eu-1,O=Bank`); `None` when the client presented none. An error says why a
/// presented certificate yields no usable identity.
pub fn client_subject(conn: &rustls::ServerConnection) -> Result<Option<String>, String> {
    match conn.peer_certificates().and_then(<[_]>::first) {
        Some(leaf) => subject_of(leaf).map(Some),
        None => Ok(None),
    }
}

/// The subject DN of a DER certificate, in RFC 4514 form.
pub fn subject_of(cert: &CertificateDer<'_>) -> Result<String, String> {
    let cert = Certificate::from_der(cert.as_ref())
        .map_err(|e| format!("cannot read the client certificate: {e}"))?;
    let subject = cert.tbs_certificate().subject().to_string();
    if subject.is_empty() {
        return Err("the client certificate has an empty subject".into());
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::Pki;

    /// The receivers' use of the shared test PKI.
    trait ReceiverPki {
        fn config(&self) -> TlsConfig;
    }

    impl ReceiverPki for Pki {
        fn config(&self) -> TlsConfig {
            TlsConfig {
                cert_file: self.path("server.pem"),
                key_file: self.path("server-key.pem"),
                client_ca_file: None,
                client_auth: None,
                handshake_timeout_ms: default_handshake_timeout_ms(),
            }
        }
    }

    fn parse(text: &str) -> Result<TlsConfig, String> {
        toml::from_str::<TlsConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn builds_both_configs_with_their_alpn() {
        let pki = Pki::new();
        let tls = pki.config().load().unwrap();
        assert_eq!(
            tls.http.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(tls.grpc.alpn_protocols, [b"h2".to_vec()]);
        assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
        let mut c = pki.config();
        c.client_ca_file = Some(pki.path("ca.pem"));
        c.validate().unwrap();
        assert_eq!(
            c.client_auth(),
            ClientAuth::Required,
            "a CA file means required"
        );
        c.load().unwrap();
        c.client_auth = Some(ClientAuth::Optional);
        c.load().unwrap();
    }

    #[test]
    fn unknown_keys_and_modes_are_refused() {
        let e = parse("cert_file = \"c\"\nkey_file = \"k\"\nclient_cert = \"x\"\n").unwrap_err();
        assert!(e.contains("client_cert"), "{e}");
        let e =
            parse("cert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"maybe\"\n").unwrap_err();
        assert!(e.contains("maybe"), "{e}");
        let e = parse("key_file = \"k\"\n").unwrap_err();
        assert!(e.contains("cert_file"), "{e}");
        let c = parse("cert_file = \"c\"\nkey_file = \"k\"\nclient_auth = \"optional\"\n").unwrap();
        assert_eq!(c.client_auth(), ClientAuth::Optional);
    }

    #[test]
    fn inconsistent_settings_name_the_key() {
        let pki = Pki::new();
        let key = |c: &TlsConfig| c.validate().unwrap_err().0;
        let mut c = pki.config();
        c.client_auth = Some(ClientAuth::Required);
        assert_eq!(key(&c), "receivers.tls.client_ca_file");
        c.client_auth = Some(ClientAuth::Optional);
        assert_eq!(key(&c), "receivers.tls.client_ca_file");
        c.client_auth = Some(ClientAuth::None);
        c.client_ca_file = Some(pki.path("ca.pem"));
        assert_eq!(key(&c), "receivers.tls.client_auth");
        let mut c = pki.config();
        c.handshake_timeout_ms = 5;
        assert_eq!(key(&c), "receivers.tls.handshake_timeout_ms");
        let mut c = pki.config();
        c.cert_file = PathBuf::new();
        assert_eq!(key(&c), "receivers.tls.cert_file");
        assert!(pki.config().validate().is_ok());
    }

    fn load_err(c: &TlsConfig) -> String {
        c.load().unwrap_err().to_string()
    }

    #[test]
    fn missing_files_name_the_key_and_path() {
        let pki = Pki::new();
        let mut c = pki.config();
        c.cert_file = pki.path("nope.pem");
        let e = load_err(&c);
        assert!(
            e.starts_with("receivers.tls.cert_file: cannot read ")
                && e.contains("nope.pem")
                && e.contains("No such file"),
            "{e}"
        );
        let mut c = pki.config();
        c.key_file = pki.path("nokey.pem");
        assert!(load_err(&c).starts_with("receivers.tls.key_file: cannot read "));
        let mut c = pki.config();
        c.client_ca_file = Some(pki.path("noca.pem"));
        assert!(load_err(&c).starts_with("receivers.tls.client_ca_file: cannot read "));
    }

    #[test]
    fn bad_pem_is_a_clear_error() {
        let pki = Pki::new();
        let write = |name: &str, text: &str| {
            std::fs::write(pki.path(name), text).unwrap();
            pki.path(name)
        };
        let mut c = pki.config();
        c.cert_file = write("garbage.pem", "this is not PEM\n");
        let e = load_err(&c);
        assert!(
            e.starts_with("receivers.tls.cert_file: ") && e.contains("no PEM certificate"),
            "{e}"
        );
        c.cert_file = write("truncated.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let e = load_err(&c);
        assert!(e.contains("has no END line"), "{e}");
        c.cert_file = write(
            "base64.pem",
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        );
        let e = load_err(&c);
        assert!(e.contains("not valid base64"), "{e}");

        let mut c = pki.config();
        c.key_file = pki.path("server.pem");
        let e = load_err(&c);
        assert!(
            e.starts_with("receivers.tls.key_file: ") && e.contains("no PEM private key"),
            "{e}"
        );
        c.key_file = pki.path("other-key.pem");
        let e = load_err(&c);
        assert!(
            e.starts_with("receivers.tls.key_file: ") && e.contains("does not belong"),
            "{e}"
        );

        let mut c = pki.config();
        c.client_ca_file = Some(pki.path("server-key.pem"));
        let e = load_err(&c);
        assert!(
            e.starts_with("receivers.tls.client_ca_file: ") && e.contains("no PEM certificate"),
            "{e}"
        );
    }

    #[test]
    fn errors_never_quote_the_key_file() {
        let pki = Pki::new();
        let key_text = std::fs::read_to_string(pki.path("server-key.pem")).unwrap();
        let body_line = key_text.lines().nth(1).unwrap();
        let bad = key_text.replacen("-----END PRIVATE KEY-----", "", 1);
        std::fs::write(pki.path("bad-key.pem"), bad).unwrap();
        let mut c = pki.config();
        c.key_file = pki.path("bad-key.pem");
        let e = load_err(&c);
        assert!(!e.contains(body_line), "{e}");
        assert!(e.starts_with("receivers.tls.key_file: "), "{e}");
    }

    #[test]
    fn subjects_read_in_rfc4514_order() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Bank");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "gateway-eu-1");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(subject_of(cert.der()).unwrap(), "CN=gateway-eu-1,O=Bank");
        let e = subject_of(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])).unwrap_err();
        assert!(e.contains("cannot read the client certificate"), "{e}");
    }
}
