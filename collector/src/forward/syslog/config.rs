//! `[forward.destinations.syslog]`: where a syslog destination is, how messages are framed and
//! laid out, and the TLS settings. Every value is checked by [`SyslogConfig::validate`] with an
//! error naming the key; the field docs are the user-facing reference (see also
//! `docs/forward-syslog.md`).

use std::path::PathBuf;

use rustls::pki_types::ServerName;
use serde::Deserialize;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// One message per datagram (RFC 5426). Best effort: a datagram that is sent counts as
    /// delivered, since UDP confirms nothing.
    Udp,
    /// Plain TCP (RFC 6587).
    Tcp,
    /// TLS over TCP (RFC 5425), with octet counting.
    Tls,
}

impl SyslogProtocol {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }
}

/// How messages are delimited on a TCP or TLS stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// `MSG-LEN SP SYSLOG-MSG` (RFC 5425 §4.3, RFC 6587 §3.4.1): any byte, newlines included,
    /// survives. The default for RFC 5424 messages.
    OctetCounting,
    /// Each message ends with LF (RFC 6587 §3.4.2, "non-transparent framing"), what old
    /// receivers expect; a LF inside a message is sent as a space. The default for RFC 3164.
    Lf,
}

/// The message layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogRfc {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG` (default).
    #[default]
    Rfc5424,
    /// Legacy BSD syslog: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, no structured data.
    Rfc3164,
}

/// `[forward.destinations.syslog.tls]`. Relative paths are used as given (relative to the
/// working directory of `calltrail serve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogTls {
    /// PEM file with the CA certificate(s) the receiver's certificate must chain to. The only
    /// trust anchors: the system's roots are not used (air-gapped installs have none to offer).
    pub ca_file: PathBuf,
    /// PEM file with the client certificate chain (leaf first), for receivers that require
    /// client certificates (mTLS). Needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM file with the client's private key (PKCS#8, PKCS#1 or SEC1). Needs `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// The name the receiver's certificate must carry (and the SNI sent). Default: the host of
    /// `address` (a DNS name or an IP address).
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `[forward.destinations.syslog]` of a destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// The receiver, `host:port` (`[v6addr]:port` for an IPv6 literal). Usual ports: 514 (UDP,
    /// TCP), 6514 (TLS).
    pub address: String,
    /// `udp`, `tcp` or `tls`.
    pub protocol: SyslogProtocol,
    /// `octet_counting` or `lf`, for `tcp` and `tls` (not allowed with `udp`: one message per
    /// datagram). Default: `octet_counting` for RFC 5424, `lf` for RFC 3164.
    #[serde(default)]
    pub framing: Option<Framing>,
    /// `rfc5424` (default) or `rfc3164`.
    #[serde(default)]
    pub rfc: SyslogRfc,
    /// Syslog facility, 0 to 23. Default 13, "log audit": these are audit records. Use 10
    /// (authpriv) or 16..=23 (local0..local7) when the receiver routes by those.
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// APP-NAME (RFC 5424: 1 to 48 printable US-ASCII characters) or the RFC 3164 TAG (1 to 32
    /// of A-Z, a-z, 0-9, `.`, `_`, `-`). Default `calltrail`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// HOSTNAME (1 to 255 printable US-ASCII characters). Default: the machine's host name
    /// (`/proc/sys/kernel/hostname`); set it for a fully qualified name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// The SD-ID of Calltrail's structured-data element, `name@<PEN>` (1 to 32 printable US-ASCII
    /// characters, no `=`, space, `]` or `"`). Default `calltrail@32473`: 32473 is the private
    /// enterprise number IANA reserves for documentation; set your organisation's own.
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
    /// The largest syslog message sent, in bytes (without the octet-counting prefix or the LF).
    /// Only the MSG part is shortened to fit, at a UTF-8 character boundary, ending with
    /// `...[truncated]`; the header and structured data are never cut (an event whose header
    /// and structured data alone do not fit is rejected to the dead-letter file). Default 8192
    /// for `tcp`/`tls` (RFC 5425 receivers should take it), 2048 for `udp` (RFC 5426 receivers
    /// should take it). From 480 to 65507 (`udp`) or 1048576 (`tcp`/`tls`).
    #[serde(default)]
    pub max_message_bytes: Option<usize>,
    /// TLS settings; required with `protocol = "tls"`, refused otherwise.
    #[serde(default)]
    pub tls: Option<SyslogTls>,
    /// Budget for connecting (DNS, TCP connect and TLS handshake together), in ms. Default
    /// 10000, from 100 to 120000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Budget for writing and flushing each chunk (up to 64 KiB) of a batch, or sending one
    /// datagram, in ms; a slower receiver is disconnected and the batch retried. Default
    /// 30000, from 100 to 600000.
    #[serde(default = "default_write_timeout_ms")]
    pub write_timeout_ms: u64,
}

fn default_facility() -> u8 {
    13
}

fn default_app_name() -> String {
    "calltrail".into()
}

fn default_sd_id() -> String {
    "calltrail@32473".into()
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

fn default_write_timeout_ms() -> u64 {
    30_000
}

/// The smallest message every syslog receiver must accept (RFC 5424 §6.1).
pub const MIN_MESSAGE_BYTES: usize = 480;
/// The largest UDP payload over IPv4.
pub const MAX_UDP_MESSAGE_BYTES: usize = 65_507;
/// The largest message over TCP or TLS this transport sends.
pub const MAX_STREAM_MESSAGE_BYTES: usize = 1_048_576;

/// A setting that is not usable: the key (`forward.destinations[2].syslog.address`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    /// The full key of the setting.
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// True for printable US-ASCII (`%d33-126`), what RFC 5424 header fields are made of.
pub(crate) fn printable(b: u8) -> bool {
    (33..=126).contains(&b)
}

/// True for a valid RFC 5424 SD-NAME: 1 to 32 printable US-ASCII characters except `=`, space,
/// `]` and `"`.
pub(crate) fn sd_name(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| printable(b) && !matches!(b, b'=' | b']' | b'"'))
}

/// True for an RFC 3164 TAG as Calltrail writes it.
pub(crate) fn tag(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Splits `host:port` (`[v6]:port`) into the host (without brackets) and the port.
pub(crate) fn split_address(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

impl SyslogConfig {
    /// The framing on the wire: `None` for UDP (a datagram per message), else the configured
    /// one or the default for the RFC.
    pub fn effective_framing(&self) -> Option<Framing> {
        match self.protocol {
            SyslogProtocol::Udp => None,
            SyslogProtocol::Tcp | SyslogProtocol::Tls => {
                Some(self.framing.unwrap_or(match self.rfc {
                    SyslogRfc::Rfc5424 => Framing::OctetCounting,
                    SyslogRfc::Rfc3164 => Framing::Lf,
                }))
            }
        }
    }

    /// The configured largest message, or the default for the protocol.
    pub fn effective_max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(match self.protocol {
            SyslogProtocol::Udp => 2048,
            SyslogProtocol::Tcp | SyslogProtocol::Tls => 8192,
        })
    }

    /// The name the TLS certificate must carry: `tls.server_name`, or the host of `address`.
    pub fn server_name(&self) -> Option<String> {
        if let Some(name) = self.tls.as_ref().and_then(|t| t.server_name.clone()) {
            return Some(name);
        }
        split_address(&self.address).map(|(host, _)| host.to_owned())
    }

    /// Checks every setting without touching the network or reading files; errors name the key
    /// under `key` (e.g. `forward.destinations[2].syslog`).
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let err = |field: &str, problem: String| {
            Err(ConfigError {
                key: format!("{key}.{field}"),
                problem,
            })
        };
        if split_address(&self.address).is_none() {
            return err(
                "address",
                format!(
                    "{:?} is not host:port (a host name or IP address, \"[v6]:port\" for IPv6, and a port from 1 to 65535)",
                    self.address
                ),
            );
        }
        if self.protocol == SyslogProtocol::Udp && self.framing.is_some() {
            return err(
                "framing",
                "is not used with protocol \"udp\" (one message per datagram): remove it".into(),
            );
        }
        if self.facility > 23 {
            return err(
                "facility",
                format!("{} is not a syslog facility (0 to 23)", self.facility),
            );
        }
        match self.rfc {
            SyslogRfc::Rfc5424
                if self.app_name.is_empty()
                    || self.app_name.len() > 48
                    || !self.app_name.bytes().all(printable) =>
            {
                return err(
                    "app_name",
                    format!(
                        "{:?} must be 1 to 48 printable US-ASCII characters (no spaces)",
                        self.app_name
                    ),
                );
            }
            SyslogRfc::Rfc3164 if !tag(&self.app_name) => {
                return err(
                    "app_name",
                    format!(
                        "{:?} must be 1 to 32 characters of A-Z, a-z, 0-9, '.', '_', '-' (an RFC 3164 TAG)",
                        self.app_name
                    ),
                );
            }
            _ => {}
        }
        if let Some(h) = &self.hostname
            && (h.is_empty() || h.len() > 255 || !h.bytes().all(printable))
        {
            return err(
                "hostname",
                format!("{h:?} must be 1 to 255 printable US-ASCII characters (no spaces)"),
            );
        }
        let private = self.sd_id.split_once('@').is_some_and(|(name, pen)| {
            !name.is_empty()
                && !pen.is_empty()
                && !pen.contains('@')
                && pen.bytes().all(|b| b.is_ascii_digit())
        });
        if !sd_name(&self.sd_id) || !private {
            return err(
                "sd_id",
                format!(
                    "{:?} must be a private SD-ID, name@<enterprise number> (1 to 32 printable US-ASCII characters, no '=', space, ']' or '\"'), e.g. \"calltrail@32473\"",
                    self.sd_id
                ),
            );
        }
        let max = self.effective_max_message_bytes();
        let limit = match self.protocol {
            SyslogProtocol::Udp => MAX_UDP_MESSAGE_BYTES,
            SyslogProtocol::Tcp | SyslogProtocol::Tls => MAX_STREAM_MESSAGE_BYTES,
        };
        if !(MIN_MESSAGE_BYTES..=limit).contains(&max) {
            return err(
                "max_message_bytes",
                format!(
                    "{max} must be between {MIN_MESSAGE_BYTES} and {limit} for protocol \"{}\"",
                    self.protocol.as_str()
                ),
            );
        }
        match (&self.tls, self.protocol) {
            (None, SyslogProtocol::Tls) => {
                return err(
                    "tls",
                    "must be set with protocol \"tls\" (at least tls.ca_file)".into(),
                );
            }
            (Some(_), SyslogProtocol::Udp | SyslogProtocol::Tcp) => {
                return err(
                    "tls",
                    format!(
                        "is only used with protocol \"tls\", not \"{}\": remove it or set protocol = \"tls\"",
                        self.protocol.as_str()
                    ),
                );
            }
            (Some(tls), SyslogProtocol::Tls) => validate_tls(tls, &format!("{key}.tls"))?,
            (None, _) => {}
        }
        if self.tls.is_some()
            && let Some(name) = self.server_name()
            && ServerName::try_from(name.clone()).is_err()
        {
            return err(
                "tls.server_name",
                format!("{name:?} is not a DNS name or an IP address"),
            );
        }
        if !(100..=120_000).contains(&self.connect_timeout_ms) {
            return err(
                "connect_timeout_ms",
                format!("{} must be between 100 and 120000", self.connect_timeout_ms),
            );
        }
        if !(100..=600_000).contains(&self.write_timeout_ms) {
            return err(
                "write_timeout_ms",
                format!("{} must be between 100 and 600000", self.write_timeout_ms),
            );
        }
        Ok(())
    }
}

fn validate_tls(tls: &SyslogTls, key: &str) -> Result<(), ConfigError> {
    let err = |field: &str, problem: &str| {
        Err(ConfigError {
            key: format!("{key}.{field}"),
            problem: problem.to_owned(),
        })
    };
    if tls.ca_file.as_os_str().is_empty() {
        return err("ca_file", "must not be empty");
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(_), None) => err("client_key", "must be set with client_cert"),
        (None, Some(_)) => err("client_cert", "must be set with client_key"),
        (Some(c), _) if c.as_os_str().is_empty() => err("client_cert", "must not be empty"),
        (_, Some(k)) if k.as_os_str().is_empty() => err("client_key", "must not be empty"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SyslogConfig, String> {
        toml::from_str::<SyslogConfig>(text).map_err(|e| e.to_string())
    }

    fn key_of(c: &SyslogConfig) -> String {
        c.validate("forward.destinations[2].syslog")
            .unwrap_err()
            .key
    }

    #[test]
    fn defaults_depend_on_protocol_and_rfc() {
        let c = parse("address = \"siem.example:514\"\nprotocol = \"udp\"\n").unwrap();
        c.validate("s").unwrap();
        assert_eq!(c.effective_framing(), None);
        assert_eq!(c.effective_max_message_bytes(), 2048);
        assert_eq!(
            (c.facility, c.app_name.as_str(), c.sd_id.as_str()),
            (13, "calltrail", "calltrail@32473")
        );
        assert_eq!(c.rfc, SyslogRfc::Rfc5424);
        let c = parse("address = \"siem.example:514\"\nprotocol = \"tcp\"\n").unwrap();
        assert_eq!(c.effective_framing(), Some(Framing::OctetCounting));
        assert_eq!(c.effective_max_message_bytes(), 8192);
        let c = parse("address = \"siem.example:514\"\nprotocol = \"tcp\"\nrfc = \"rfc3164\"\n")
            .unwrap();
        assert_eq!(c.effective_framing(), Some(Framing::Lf));
        let c =
            parse("address = \"[::1]:6514\"\nprotocol = \"tls\"\n[tls]\nca_file = \"ca.pem\"\n")
                .unwrap();
        c.validate("s").unwrap();
        assert_eq!(c.server_name().as_deref(), Some("::1"));
    }

    #[test]
    fn unknown_keys_and_values_are_refused() {
        let e = parse("address = \"a:1\"\nprotocol = \"udp\"\nport = 5\n").unwrap_err();
        assert!(e.contains("port"), "{e}");
        let e = parse("address = \"a:1\"\nprotocol = \"sctp\"\n").unwrap_err();
        assert!(e.contains("sctp"), "{e}");
        let e = parse("address = \"a:1\"\nprotocol = \"tcp\"\nframing = \"nul\"\n").unwrap_err();
        assert!(e.contains("nul"), "{e}");
        let e =
            parse("address = \"a:1\"\nprotocol = \"tls\"\n[tls]\nca_file = \"c\"\nsni = \"x\"\n")
                .unwrap_err();
        assert!(e.contains("sni"), "{e}");
    }

    #[test]
    fn every_bad_setting_names_its_key() {
        let base = || parse("address = \"siem.example:6514\"\nprotocol = \"tcp\"\n").unwrap();
        let k = "forward.destinations[2].syslog.";
        for address in [
            "siem.example",
            "siem.example:0",
            ":514",
            "::1:514",
            "h:99999",
            "",
        ] {
            let mut c = base();
            c.address = address.into();
            assert_eq!(key_of(&c), format!("{k}address"), "{address}");
        }
        let mut c = base();
        c.facility = 24;
        assert_eq!(key_of(&c), format!("{k}facility"));
        for app in ["", "has space", &"a".repeat(49), "é"] {
            let mut c = base();
            c.app_name = app.into();
            assert_eq!(key_of(&c), format!("{k}app_name"), "{app}");
        }
        let mut c = base();
        c.rfc = SyslogRfc::Rfc3164;
        c.app_name = "calltrail:x".into();
        assert_eq!(key_of(&c), format!("{k}app_name"));
        let mut c = base();
        c.hostname = Some("two words".into());
        assert_eq!(key_of(&c), format!("{k}hostname"));
        for sd in [
            "calltrail",
            "calltrail@",
            "@32473",
            "a=b@1",
            "a@1@2",
            "x@pen",
            "a]@1",
        ] {
            let mut c = base();
            c.sd_id = sd.into();
            assert_eq!(key_of(&c), format!("{k}sd_id"), "{sd}");
        }
        let mut c = base();
        c.max_message_bytes = Some(479);
        assert_eq!(key_of(&c), format!("{k}max_message_bytes"));
        c.max_message_bytes = Some(MAX_STREAM_MESSAGE_BYTES);
        c.validate("s").unwrap();
        c.protocol = SyslogProtocol::Udp;
        assert_eq!(key_of(&c), format!("{k}max_message_bytes"));
        let mut c = base();
        c.protocol = SyslogProtocol::Udp;
        c.framing = Some(Framing::Lf);
        assert_eq!(key_of(&c), format!("{k}framing"));
        let mut c = base();
        c.protocol = SyslogProtocol::Tls;
        assert_eq!(key_of(&c), format!("{k}tls"));
        let tls = SyslogTls {
            ca_file: "ca.pem".into(),
            client_cert: None,
            client_key: None,
            server_name: None,
        };
        c.tls = Some(tls.clone());
        c.validate("s").unwrap();
        c.tls = Some(SyslogTls {
            client_cert: Some("c.pem".into()),
            ..tls.clone()
        });
        assert_eq!(key_of(&c), format!("{k}tls.client_key"));
        c.tls = Some(SyslogTls {
            client_key: Some("k.pem".into()),
            ..tls.clone()
        });
        assert_eq!(key_of(&c), format!("{k}tls.client_cert"));
        c.tls = Some(SyslogTls {
            server_name: Some("not a name".into()),
            ..tls.clone()
        });
        assert_eq!(key_of(&c), format!("{k}tls.server_name"));
        c.tls = Some(SyslogTls {
            ca_file: PathBuf::new(),
            ..tls.clone()
        });
        assert_eq!(key_of(&c), format!("{k}tls.ca_file"));
        let mut c = base();
        c.tls = Some(tls);
        assert_eq!(key_of(&c), format!("{k}tls"));
        let mut c = base();
        c.connect_timeout_ms = 99;
        assert_eq!(key_of(&c), format!("{k}connect_timeout_ms"));
        let mut c = base();
        c.write_timeout_ms = 600_001;
        assert_eq!(key_of(&c), format!("{k}write_timeout_ms"));
        let e = c.validate("forward.destinations[2].syslog").unwrap_err();
        assert_eq!(
            e.to_string(),
            "forward.destinations[2].syslog.write_timeout_ms: 600001 must be between 100 and 600000"
        );
    }
}
