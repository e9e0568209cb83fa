//! TLS against a real PostgreSQL that serves a certificate from a CA the test makes (openssl)
//! and accepts TCP connections only over TLS: verification succeeds with the right CA and
//! fails, saying why, with the wrong CA, the wrong host name, or no TLS at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{Dir, pg, run, shipgate};

pub(crate) struct TlsServer {
    /// The superuser URL, host 127.0.0.1 (the name in the certificate), no sslmode.
    pub url: String,
    pub certs: PathBuf,
}

impl TlsServer {
    pub(crate) fn ca(&self) -> String {
        self.certs.join("ca.crt").display().to_string()
    }

    pub(crate) fn other_ca(&self) -> String {
        self.certs.join("other-ca.crt").display().to_string()
    }

    /// The same server under a name the certificate does not carry.
    pub(crate) fn url_via_localhost(&self) -> String {
        self.url.replace("@127.0.0.1:", "@localhost:")
    }
}

static SERVER: OnceLock<TlsServer> = OnceLock::new();

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA, a server certificate it signs for IP 127.0.0.1, and an unrelated CA.
fn make_certs(dir: &Path) {
    let ca_ext =
        ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
    for (name, cn) in [("ca", "shipgate test CA"), ("other-ca", "some other CA")] {
        let mut args = vec!["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3"];
        let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={cn}"));
        args.extend(["-keyout", &key, "-out", &crt, "-subj", &subj]);
        args.extend(ca_ext);
        openssl(dir, &args);
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3",
            "-out",
            "server.crt",
            "-extfile",
            "server.ext",
        ],
    );
}

pub(crate) fn server() -> &'static TlsServer {
    SERVER.get_or_init(|| {
        let certs = tempfile::Builder::new().prefix("shipgate-tls-").tempdir().unwrap().keep();
        std::fs::set_permissions(&certs, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        make_certs(&certs);
        let url = pg::start_server(&["--tls", certs.to_str().unwrap()]);
        TlsServer { url, certs }
    })
}

fn check(url: &str, args: &[&str]) -> Command {
    let mut cmd = shipgate(&["db", "check", "--connect-timeout", "5s"]);
    cmd.args(args).env("DATABASE_URL", url).env("SHIPGATE_SOURCE", "no-migrations-here");
    cmd
}

#[tokio::test]
async fn verify_full_with_the_right_ca_reports_the_session() {
    let s = server();
    let out = run(check(&s.url, &["--sslmode", "verify-full", "--ssl-root-cert", &s.ca()])).await.expect(0);
    for needle in [
        "certificate chain and hostname verified",
        &format!("against the CA file {} (from --ssl-root-cert)", s.ca()),
        "sslmode     verify-full (from --sslmode)",
        "pending     unknown: no migrations folder at no-migrations-here",
    ] {
        assert!(out.stdout.contains(needle), "missing {needle}:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("TLSv1.3") || out.stdout.contains("TLSv1.2"), "{}", out.stdout);

    // The same through seed 000's variables, and as JSON.
    let u = url::Url::parse(&s.url).unwrap();
    let mut cmd = shipgate(&["db", "check", "--output", "json"]);
    cmd.env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", u.port().unwrap().to_string())
        .env("DB_USER", u.username())
        .env("DB_PASSWORD", u.password().unwrap())
        .env("DB_NAME", "postgres")
        .env("DB_SSL", "true")
        .env("DB_SSL_CERT_PATH", s.ca());
    let out = run(cmd).await.expect(0);
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(doc["tls"]["in_use"], true, "{doc}");
    assert_eq!(doc["tls"]["verified"], true, "{doc}");
    assert_eq!(doc["tls"]["hostname_verified"], true, "{doc}");
    assert_eq!(doc["tls"]["sslmode_from"], "DB_SSL=true", "{doc}");
    assert_eq!(doc["history_table_exists"], false, "{doc}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_chain_failure() {
    let s = server();
    let started = Instant::now();
    let out =
        run(check(&s.url, &["--sslmode", "verify-full", "--ssl-root-cert", &s.other_ca()])).await.expect(3);
    assert!(started.elapsed() < Duration::from_secs(5), "a chain failure is not retried");
    let needle =
        format!("certificate chain is not trusted by the CA file {} (from --ssl-root-cert)", s.other_ca());
    assert!(out.stderr.contains(&needle), "{}", out.stderr);
    assert!(out.stderr.contains("hint: pass the CA that signed the server's certificate"), "{}", out.stderr);

    // Without any CA file, the public roots do not know a private CA either.
    let out = run(check(&s.url, &["--sslmode", "verify-ca"])).await.expect(3);
    assert!(
        out.stderr.contains("certificate chain is not trusted by the public web roots"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_wrong_host_name_is_a_hostname_failure_and_verify_ca_accepts_it() {
    let s = server();
    let url = s.url_via_localhost();
    let out = run(check(&url, &["--sslmode", "verify-full", "--ssl-root-cert", &s.ca()])).await.expect(3);
    assert!(out.stderr.contains("not valid for the host name `localhost`"), "{}", out.stderr);
    assert!(out.stderr.contains("--sslmode verify-ca to check the chain only"), "{}", out.stderr);
    let out = run(check(&url, &["--sslmode", "verify-ca", "--ssl-root-cert", &s.ca()])).await.expect(0);
    assert!(out.stdout.contains("certificate chain verified, hostname not checked"), "{}", out.stdout);
}

#[tokio::test]
async fn require_encrypts_without_a_ca_and_the_url_can_say_so() {
    let s = server();
    let out = run(check(&s.url, &["--sslmode", "require"])).await.expect(0);
    assert!(out.stdout.contains("not verified (encrypted only)"), "{}", out.stdout);
    let out = run(check(&format!("{}?sslmode=require", s.url), &[])).await.expect(0);
    assert!(out.stdout.contains("require (from sslmode in the URL)"), "{}", out.stdout);
    // DB_SSL_REJECT_UNAUTHORIZED=false is node-postgres's way of saying the same.
    let mut cmd = check(&s.url, &[]);
    cmd.env("DB_SSL", "true").env("DB_SSL_REJECT_UNAUTHORIZED", "false");
    let out = run(cmd).await.expect(0);
    assert!(out.stdout.contains("require (from DB_SSL_REJECT_UNAUTHORIZED=false)"), "{}", out.stdout);
}

#[tokio::test]
async fn no_tls_against_a_server_that_requires_it_says_so() {
    let s = server();
    for (args, env) in [(&["--sslmode", "disable"][..], None), (&[][..], Some(("DB_SSL", "false")))] {
        let mut cmd = check(&s.url, args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = run(cmd).await.expect(3);
        assert!(out.stderr.contains("the server accepts only TLS connections"), "{}", out.stderr);
        assert!(out.stderr.contains("hint: use --sslmode require"), "{}", out.stderr);
    }
    // And migrations run over TLS like anywhere else.
    let dir = Dir::new(&[("1_a.sql", "CREATE TABLE tls_a (id int);")]);
    let mut up = shipgate(&["migrate", "up", "--source", dir.arg(), "--schema", "tls_it"]);
    let db = format!("{}?sslmode=verify-full&sslrootcert={}", s.url, s.ca());
    up.env("DATABASE_URL", &db);
    let mut admin = pg::connect_url(&s.url).await;
    pg::exec(&mut admin, "DROP SCHEMA IF EXISTS tls_it CASCADE; CREATE SCHEMA tls_it").await;
    run(up).await.expect(0);
}

/// A man in the middle that refuses TLS (answers the SSLRequest with `N`) and asks for the
/// password in clear text. Returns its port and whether a password message ever reached it.
fn downgrading_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got_password = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = got_password.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let read_message = |s: &mut std::net::TcpStream, tagged: bool| -> Option<(u8, Vec<u8>)> {
                    let mut tag = [0u8; 1];
                    if tagged {
                        s.read_exact(&mut tag).ok()?;
                    }
                    let mut len = [0u8; 4];
                    s.read_exact(&mut len).ok()?;
                    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
                    s.read_exact(&mut body).ok()?;
                    Some((tag[0], body))
                };
                // SSLRequest (or a startup message when the client does not ask for TLS).
                let Some((_, first)) = read_message(&mut s, false) else { return };
                if first.starts_with(&80877103u32.to_be_bytes()) {
                    let _ = s.write_all(b"N");
                    if read_message(&mut s, false).is_none() {
                        return;
                    }
                }
                // AuthenticationCleartextPassword.
                let _ = s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]);
                if let Some((b'p', _)) = read_message(&mut s, true) {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (port, got_password)
}

/// `0.0.0.0` reaches this machine but is not loopback by name: it stands in for a database
/// across a network, which is where a downgrade can happen.
#[tokio::test]
async fn a_server_that_refuses_tls_never_gets_the_password_by_default() {
    let (port, got_password) = downgrading_server();
    let url = format!("postgres://app:s3cr3t-downgrade@0.0.0.0:{port}/app");
    let refused = run(check(&url, &[])).await.expect(3);
    assert!(refused.stderr.contains("verify-full"), "{}", refused.stderr);
    assert!(!got_password.load(std::sync::atomic::Ordering::SeqCst), "the password went out in clear text");

    // Asked for explicitly, `prefer` may fall back to a connection without TLS, and says what
    // that risks; a server that then asks for the password in clear text does not get it.
    let prefer = run(check(&url, &["--sslmode", "prefer"])).await.expect(3);
    assert!(
        prefer.stderr.contains("falls back to clear text when the server, or an attacker, refuses TLS"),
        "{}",
        prefer.stderr
    );
    assert!(
        prefer.stderr.contains("asked for the password in clear text")
            && prefer.stderr.contains("closed before the password was sent")
            && prefer.stderr.contains("--allow-cleartext-password"),
        "{}",
        prefer.stderr
    );
    assert!(!prefer.all().contains("s3cr3t-downgrade"));
    assert!(
        !got_password.load(std::sync::atomic::Ordering::SeqCst),
        "prefer sent the password in clear text"
    );
    let disable = run(check(&url, &["--sslmode", "disable"])).await.expect(3);
    assert!(disable.stderr.contains("asked for the password in clear text"), "{}", disable.stderr);
    assert!(
        !got_password.load(std::sync::atomic::Ordering::SeqCst),
        "disable sent the password in clear text"
    );

    // Only the flag lets it through: the guard, not chance, is what kept it.
    let allowed = run(check(&url, &["--sslmode", "disable", "--allow-cleartext-password"])).await;
    assert_ne!(allowed.code, Some(0));
    assert!(got_password.load(std::sync::atomic::Ordering::SeqCst), "{}", allowed.stderr);
}

/// Through the guard, a real server's SCRAM handshake and the session after it work as
/// without: `db check` over `sslmode=disable` to this machine's address that is not loopback.
#[tokio::test]
async fn scram_passes_the_clear_text_guard() {
    let db = pg::TestDb::new().await;
    let mut url = url::Url::parse(&db.url).unwrap();
    if matches!(url.host_str(), Some("127.0.0.1" | "localhost")) {
        url.set_host(Some("0.0.0.0")).unwrap();
    }
    let checked = run(check(url.as_str(), &["--sslmode", "disable", "-vv"])).await.expect(0);
    assert!(checked.stderr.contains("through the clear-text password guard"), "{}", checked.stderr);
    assert!(checked.stdout.contains(&db.name), "{}", checked.stdout);
}

/// A server whose certificate comes from a CA nobody trusts: verify-full by default, refused.
#[tokio::test]
async fn a_self_signed_certificate_is_refused_by_default_on_a_network_host() {
    let server = server();
    let url = server.url.replace("@127.0.0.1:", "@0.0.0.0:");
    let refused = run(check(&url, &[])).await.expect(3);
    assert!(
        refused.stderr.contains("verify-full")
            && refused.stderr.contains("the default for hosts that are not loopback"),
        "{}",
        refused.stderr
    );
}
