//! A test PKI, written as PEM files in a temporary directory: `ca.pem` (a CA), `server.pem` and
//! `server-key.pem` (for `localhost` and 127.0.0.1, signed by the CA), `client.pem` and
//! `client-key.pem` (a client certificate, CN `calltrail-forwarder`, signed by the CA), and
//! `other-ca.pem` and `other-key.pem` (a CA and a key that belong to nothing else). Shared by
//! the receivers' TLS tests and the syslog transport's.

use std::path::PathBuf;

/// The PKI's directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// Generates every certificate and key.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let server =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
        let client_key = rcgen::KeyPair::generate().unwrap();
        let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name
            .push(rcgen::DnType::CommonName, "calltrail-forwarder");
        cp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = cp.signed_by(&client_key, &issuer).unwrap();
        let other_key = rcgen::KeyPair::generate().unwrap();
        let other_ca = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&other_key)
            .unwrap();
        let w = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        w("ca.pem", ca_cert.pem());
        w("other-ca.pem", other_ca.pem());
        w("other-key.pem", other_key.serialize_pem());
        w("server.pem", server.pem());
        w("server-key.pem", key.serialize_pem());
        w("client.pem", client.pem());
        w("client-key.pem", client_key.serialize_pem());
        Pki { dir }
    }

    /// The file `name` of the PKI.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
