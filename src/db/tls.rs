//! TLS to PostgreSQL: the modes our users type, the roots a verified connection trusts, and
//! what a failed handshake means in words an operator can act on.
//!
//! Amazon RDS certificates are signed by Amazon's own CAs, which no public root store holds;
//! their bundle is compiled in (see `rds-ca/SOURCE.md` for where this copy comes from) so a
//! Fargate task verifies its database with no file to mount and no flag to remember.

use std::fmt;
use std::path::PathBuf;

use sqlx::postgres::PgSslMode;

/// Amazon RDS's global CA bundle (PEM).
pub const RDS_CA_BUNDLE: &[u8] = include_bytes!("rds-ca/global-bundle.pem");

/// The regions whose CAs the compiled-in bundle holds (from `rds-ca/SOURCE.md`).
pub const RDS_BUNDLE_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// A TLS mode, in libpq's terms (sqlx's own type cannot be compared, which the tables need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

pub const MODES: &str = "disable, allow, prefer, require, verify-ca, verify-full";

impl SslMode {
    /// The libpq spellings, which is what `PGSSLMODE`, `--sslmode` and `?sslmode=` take.
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Does the mode refuse to connect without TLS?
    pub fn encrypts_always(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Allow | SslMode::Prefer)
    }

    /// Does the mode check the server's certificate chain?
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    pub fn to_sqlx(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

/// An RDS or Aurora endpoint (instance, cluster, reader, custom or proxy) in a commercial
/// region. China (`.amazonaws.com.cn`) has its own CAs, which the global bundle does not hold.
pub fn is_rds_host(host: &str) -> bool {
    host.trim_end_matches('.').to_ascii_lowercase().ends_with(".rds.amazonaws.com")
}

/// A host whose traffic never leaves the machine: `localhost`, `127.0.0.0/8`, `::1`, or a
/// unix socket directory. Only there may a connection stay unencrypted by default.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.').trim_start_matches('[').trim_end_matches(']');
    host.is_empty()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The region in an RDS endpoint: `db.abc123.eu-west-1.rds.amazonaws.com` → `eu-west-1`.
pub fn rds_region(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let rest = host.strip_suffix(".rds.amazonaws.com")?;
    rest.rsplit('.').next().filter(|r| r.contains('-')).map(str::to_string)
}

/// Which certificates a verifying connection trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Roots {
    /// The public web roots (Mozilla's list, compiled in by webpki-roots).
    Public,
    /// A CA file the user named, and the variable or flag that named it.
    File { path: PathBuf, from: &'static str },
    /// The compiled-in Amazon RDS bundle plus the public roots (which RDS Proxy's
    /// certificates chain to): the default for every host that is not loopback.
    RdsBundle,
}

impl fmt::Display for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Roots::Public => f.write_str("the public web roots"),
            Roots::File { path, from } => write!(f, "the CA file {} (from {from})", path.display()),
            Roots::RdsBundle => f.write_str("the public web roots and the compiled-in Amazon RDS CA bundle"),
        }
    }
}

/// The TLS part of a resolved target, for messages and `db check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsChoice {
    pub mode: SslMode,
    /// What set the mode (`--sslmode`, `DB_SSL`, "the default for RDS hosts", ...).
    pub mode_from: &'static str,
    pub roots: Roots,
}

impl TlsChoice {
    /// "verified: chain and hostname" and friends, for `db check`.
    pub fn verification(&self) -> &'static str {
        match self.mode {
            SslMode::VerifyFull => "certificate chain and hostname verified",
            SslMode::VerifyCa => "certificate chain verified, hostname not checked",
            _ => "not verified (encrypted only)",
        }
    }
}

/// What went wrong with TLS, in the three ways an operator can fix differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The server answered the TLS request with "no".
    Refused,
    /// The server requires TLS and we connected without it.
    Required,
    /// The certificate chain is not trusted by our roots (unknown issuer, bad signature,
    /// expired, revoked, not a server certificate).
    Chain(String),
    /// The chain is trusted, but not for the host name we connected to.
    Hostname(String),
    /// Any other TLS failure (protocol versions, alerts).
    Other(String),
}

/// Read the TLS failure, if any, out of a connection error.
pub fn problem(err: &sqlx::Error) -> Option<Problem> {
    match err {
        sqlx::Error::Tls(e) => {
            let text = e.to_string();
            if text.contains("server does not support TLS") {
                return Some(Problem::Refused);
            }
            Some(match e.downcast_ref::<rustls::Error>() {
                Some(r) => from_rustls(r),
                None => Problem::Other(text),
            })
        }
        // rustls reports handshake failures through the socket, as InvalidData I/O errors.
        sqlx::Error::Io(io) => {
            io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).map(from_rustls)
        }
        sqlx::Error::Database(db) => {
            // pg_hba.conf has `hostssl` lines only: "no pg_hba.conf entry for host ..., no encryption".
            let required = db.code().as_deref() == Some("28000") && db.message().contains("no encryption");
            required.then_some(Problem::Required)
        }
        _ => None,
    }
}

fn from_rustls(err: &rustls::Error) -> Problem {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::NotValidForName | C::NotValidForNameContext { .. } => Problem::Hostname(err.to_string()),
            _ => Problem::Chain(err.to_string()),
        },
        other => Problem::Other(other.to_string()),
    }
}

impl Problem {
    /// The sentence that goes into the connection error.
    pub fn describe(&self, host: &str, tls: &TlsChoice) -> String {
        match self {
            Problem::Refused => format!(
                "TLS: the server refused TLS, and sslmode={} (from {}) requires it",
                tls.mode.name(),
                tls.mode_from
            ),
            Problem::Required => format!(
                "TLS: the server accepts only TLS connections, and sslmode={} (from {}) connected without it",
                tls.mode.name(),
                tls.mode_from
            ),
            Problem::Chain(detail) => format!(
                "TLS: the server's certificate chain is not trusted by {} ({detail}; sslmode={} from {})",
                tls.roots,
                tls.mode.name(),
                tls.mode_from
            ),
            Problem::Hostname(detail) => {
                format!("TLS: the server's certificate is not valid for the host name `{host}` ({detail})")
            }
            Problem::Other(detail) => format!("TLS handshake failed: {detail}"),
        }
    }

    /// What to do about it.
    pub fn hint(&self, host: &str, tls: &TlsChoice) -> String {
        match self {
            Problem::Refused => "turn on ssl on the server. If (and only if) the network to it is trusted, \
                                 accept an unencrypted connection with --sslmode prefer (or disable): an \
                                 attacker on the path can also refuse TLS, to read the password"
                .to_string(),
            Problem::Required => "use --sslmode require (or verify-full with the server's CA): \
                                  DB_SSL=true, PGSSLMODE or ?sslmode= in the URL set it too"
                .to_string(),
            Problem::Chain(_) => {
                let mut hint = "pass the CA that signed the server's certificate with --ssl-root-cert \
                                (or DB_SSL_CERT_PATH, PGSSLROOTCERT); --sslmode require encrypts without \
                                verifying"
                    .to_string();
                if tls.mode_from == "DB_SSL=true" {
                    hint.push_str(", as DB_SSL_REJECT_UNAUTHORIZED=false does");
                }
                if is_rds_host(host) {
                    match (&tls.roots, rds_region(host)) {
                        (Roots::File { .. }, _) => hint.push_str(
                            "; for RDS, leave the CA file out to use the compiled-in RDS bundle \
                             (the old rds-ca-2019 CA expired in 2024)",
                        ),
                        (Roots::RdsBundle, Some(region))
                            if !RDS_BUNDLE_REGIONS.contains(&region.as_str()) =>
                        {
                            hint.push_str(&format!(
                                "; the compiled-in RDS bundle predates region {region}: pass \
                                 https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem \
                                 with --ssl-root-cert"
                            ))
                        }
                        _ => {}
                    }
                }
                hint
            }
            Problem::Hostname(_) => "connect with the host name the certificate was issued for (the \
                                     endpoint's DNS name, not an IP or an alias), or use --sslmode \
                                     verify-ca to check the chain only"
                .to_string(),
            Problem::Other(_) => "check the server's TLS settings (ssl_min_protocol_version, \
                                  certificates) against a client that supports TLS 1.2 and 1.3"
                .to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_use_the_libpq_spellings() {
        let cases = [
            ("disable", Some(SslMode::Disable)),
            ("Require", Some(SslMode::Require)),
            (" verify-full ", Some(SslMode::VerifyFull)),
            ("verify-ca", Some(SslMode::VerifyCa)),
            ("verify_full", None),
            ("true", None),
        ];
        for (text, mode) in cases {
            assert_eq!(SslMode::parse(text), mode, "{text}");
        }
    }

    #[test]
    fn rds_hosts_and_their_regions() {
        let cases = [
            ("db.abc123xyz.eu-west-1.rds.amazonaws.com", true, Some("eu-west-1")),
            ("app.cluster-ro-abc.us-east-1.rds.amazonaws.com.", true, Some("us-east-1")),
            ("my-proxy.proxy-abc.ap-south-2.rds.amazonaws.com", true, Some("ap-south-2")),
            ("DB.X.US-WEST-2.RDS.AMAZONAWS.COM", true, Some("us-west-2")),
            ("db.abc.cn-north-1.rds.amazonaws.com.cn", false, None),
            ("rds.amazonaws.com.evil.example", false, None),
            ("localhost", false, None),
        ];
        for (host, rds, region) in cases {
            assert_eq!(is_rds_host(host), rds, "{host}");
            assert_eq!(rds_region(host).as_deref(), region, "{host}");
        }
    }

    #[test]
    fn rds_bundle_loads_into_rustls() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut store = rustls::RootCertStore::empty();
        let mut count = 0;
        for cert in CertificateDer::pem_slice_iter(RDS_CA_BUNDLE) {
            store.add(cert.expect("a PEM block of the bundle")).expect("a trust anchor");
            count += 1;
        }
        // sqlx adds every block and fails the connection on the first one that does not load.
        assert_eq!(count, 115, "update rds-ca/SOURCE.md when the bundle changes");
        assert_eq!(store.len(), count);
    }

    #[test]
    fn hints_name_what_to_change() {
        let bundle = TlsChoice {
            mode: SslMode::VerifyFull,
            mode_from: "the default for RDS hosts",
            roots: Roots::RdsBundle,
        };
        let new_region =
            Problem::Chain("UnknownIssuer".into()).hint("db.abc.il-central-1.rds.amazonaws.com", &bundle);
        assert!(new_region.contains("il-central-1/il-central-1-bundle.pem"), "{new_region}");
        let covered =
            Problem::Chain("UnknownIssuer".into()).hint("db.abc.eu-west-1.rds.amazonaws.com", &bundle);
        assert!(!covered.contains("predates"), "{covered}");
        let file = TlsChoice {
            roots: Roots::File { path: "ssl/rds-ca-2019-root.pem".into(), from: "DB_SSL_CERT_PATH" },
            ..bundle.clone()
        };
        let old_ca = Problem::Chain("UnknownIssuer".into()).hint("db.abc.eu-west-1.rds.amazonaws.com", &file);
        assert!(old_ca.contains("rds-ca-2019"), "{old_ca}");
        let text = Problem::Chain("UnknownIssuer".into()).describe("h", &file);
        assert!(text.contains("ssl/rds-ca-2019-root.pem (from DB_SSL_CERT_PATH)"), "{text}");
        assert!(Problem::Refused.describe("h", &bundle).contains("sslmode=verify-full"));
    }
}
