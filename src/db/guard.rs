//! The clear-text password guard: a connection that may run without TLS to a host across a
//! network (`sslmode` disable, allow or prefer, asked for explicitly) goes through a relay on
//! loopback that reads the server's side of the handshake, and closes the connection before
//! the client ever sees an `AuthenticationCleartextPassword` request. The password then never
//! leaves the process over a link anyone on the path can read, whichever server (or attacker)
//! answers, and SCRAM, MD5 or `trust` pass untouched.
//!
//! A probe connection made first could not promise this: the server that answers the probe
//! need not be the one that answers the real connection. The relay watches the real one.
//! After authentication (or once the server has agreed to TLS) it only copies bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The protocol code of an `SSLRequest` (PostgreSQL's "1234.5679").
const SSL_REQUEST: u32 = 80_877_103;

/// The longest message the relay reads whole before authentication; real ones are a few
/// hundred bytes, and anything longer is not a PostgreSQL server speaking.
const MAX_MESSAGE: usize = 1 << 20;

/// What the relay does with one message from the server before authentication is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on and keep reading (SASL or MD5 steps, notices, errors).
    Forward,
    /// `AuthenticationOk`: pass it on; from here the relay only copies.
    Settled,
    /// `AuthenticationCleartextPassword`: close the connection without passing it on.
    Refuse,
}

/// Judge one server message by its tag and body (after the length). Pure.
pub fn judge(tag: u8, body: &[u8]) -> Verdict {
    let code = body.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match (tag, code) {
        (b'R', Some(3)) => Verdict::Refuse,
        (b'R', Some(0)) => Verdict::Settled,
        _ => Verdict::Forward,
    }
}

/// Whether the client's first message (length included) is an `SSLRequest`. Pure.
pub fn is_ssl_request(message: &[u8]) -> bool {
    message.len() == 8 && message[4..8] == SSL_REQUEST.to_be_bytes()
}

/// A relay for one connection, already connected to the server.
pub struct Guard {
    /// The loopback port the client connects to instead of the server.
    pub port: u16,
    refused: Arc<AtomicBool>,
}

impl Guard {
    /// Whether the server asked for the password in clear text (and the relay closed the
    /// connection instead of passing the request on).
    pub fn refused(&self) -> bool {
        self.refused.load(Ordering::SeqCst)
    }
}

/// Connect to `host:port` and start the relay for the one client that connects to
/// [`Guard::port`]. A server that cannot be reached is an error here, as the client's own
/// connect would have been.
pub async fn start(host: &str, port: u16) -> std::io::Result<Guard> {
    // A URL's IPv6 host keeps its brackets (`[2001:db8::1]`); sqlx drops them to connect, too.
    let server = TcpStream::connect((host.trim_matches(['[', ']']), port)).await?;
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let local = listener.local_addr()?.port();
    let refused = Arc::new(AtomicBool::new(false));
    let flag = refused.clone();
    tokio::spawn(async move {
        if let Ok((client, _)) = listener.accept().await {
            // Either side closing ends the relay, and the other side sees it closed.
            let _ = relay(client, server, &flag).await;
        }
    });
    Ok(Guard { port: local, refused })
}

async fn relay(mut client: TcpStream, mut server: TcpStream, refused: &AtomicBool) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let first = read_untagged(&mut client).await?;
    server.write_all(&first).await?;
    if is_ssl_request(&first) {
        let mut answer = [0u8; 1];
        server.read_exact(&mut answer).await?;
        client.write_all(&answer).await?;
        if answer[0] == b'S' {
            // Encrypted from here: nothing the relay could read, nothing it needs to.
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
            return Ok(());
        }
        let startup = read_untagged(&mut client).await?;
        server.write_all(&startup).await?;
    }
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // The client's SASL or MD5 answers flow while the server's side is read message by message.
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let downstream = authenticate(&mut server_read, client_write, refused).await;
    if downstream.is_err() || refused.load(Ordering::SeqCst) {
        upstream.abort();
    }
    downstream
}

/// Pass the server's messages on until authentication is settled, then copy the rest.
async fn authenticate(
    server: &mut (impl AsyncRead + Unpin),
    mut client: impl AsyncWrite + Unpin,
    refused: &AtomicBool,
) -> std::io::Result<()> {
    loop {
        let (tag, message) = read_tagged(server).await?;
        match judge(tag, &message[5..]) {
            Verdict::Refuse => {
                refused.store(true, Ordering::SeqCst);
                return Ok(());
            }
            Verdict::Forward => client.write_all(&message).await?,
            Verdict::Settled => {
                client.write_all(&message).await?;
                break;
            }
        }
    }
    tokio::io::copy(server, &mut client).await?;
    client.shutdown().await
}

/// A length-prefixed message without a tag (`SSLRequest`, `StartupMessage`), whole.
async fn read_untagged(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    from.read_exact(&mut len).await?;
    read_rest(from, len.to_vec(), u32::from_be_bytes(len) as usize).await
}

/// A tagged message (tag, length, body), whole, and its tag.
async fn read_tagged(from: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    from.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    Ok((head[0], read_rest(from, head.to_vec(), len + 1).await?))
}

/// Read up to `total` bytes into `message`, which holds its head already.
async fn read_rest(
    from: &mut (impl AsyncRead + Unpin),
    mut message: Vec<u8>,
    total: usize,
) -> std::io::Result<Vec<u8>> {
    if total < message.len() || total > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the server's answer is not the PostgreSQL protocol",
        ));
    }
    let head = message.len();
    message.resize(total, 0);
    from.read_exact(&mut message[head..]).await?;
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_the_server_messages_of_a_handshake() {
        let r = |code: u32, rest: &[u8]| [&code.to_be_bytes()[..], rest].concat();
        let cases: [(u8, Vec<u8>, Verdict); 8] = [
            (b'R', r(3, b""), Verdict::Refuse),
            (b'R', r(0, b""), Verdict::Settled),
            (b'R', r(5, b"salt"), Verdict::Forward),
            (b'R', r(10, b"SCRAM-SHA-256\0\0"), Verdict::Forward),
            (b'R', r(11, b"r=nonce"), Verdict::Forward),
            (b'R', r(12, b"v=proof"), Verdict::Forward),
            (b'E', b"SFATAL\0".to_vec(), Verdict::Forward),
            (b'R', b"\0\0".to_vec(), Verdict::Forward),
        ];
        for (tag, body, want) in cases {
            assert_eq!(judge(tag, &body), want, "{} {body:?}", tag as char);
        }
    }

    #[test]
    fn tells_an_ssl_request_from_a_startup_message() {
        let ssl = [&8u32.to_be_bytes()[..], &SSL_REQUEST.to_be_bytes()].concat();
        assert!(is_ssl_request(&ssl));
        let startup = [&9u32.to_be_bytes()[..], &196_608u32.to_be_bytes(), b"\0"].concat();
        assert!(!is_ssl_request(&startup));
        assert!(!is_ssl_request(&ssl[..6]));
    }

    /// A fake server that asks for `auth` and records whether a password message came back.
    async fn server(auth: u32, tls_answer: u8) -> (u16, Arc<AtomicBool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(AtomicBool::new(false));
        let seen = got.clone();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let first = read_untagged(&mut s).await.unwrap();
            if is_ssl_request(&first) {
                s.write_all(&[tls_answer]).await.unwrap();
                read_untagged(&mut s).await.unwrap();
            }
            s.write_all(&[&[b'R', 0, 0, 0, 8][..], &auth.to_be_bytes()].concat()).await.unwrap();
            if let Ok((b'p', _)) = read_tagged(&mut s).await {
                seen.store(true, Ordering::SeqCst);
            }
        });
        (port, got)
    }

    /// A client that answers any authentication request with a password message.
    async fn client(port: u16, ssl_request: bool) -> Option<u8> {
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if ssl_request {
            c.write_all(&[&8u32.to_be_bytes()[..], &SSL_REQUEST.to_be_bytes()].concat()).await.unwrap();
            let mut answer = [0u8; 1];
            c.read_exact(&mut answer).await.unwrap();
        }
        c.write_all(&[&9u32.to_be_bytes()[..], &196_608u32.to_be_bytes(), b"\0"].concat()).await.unwrap();
        let (tag, _) = read_tagged(&mut c).await.ok()?;
        c.write_all(&[b'p', 0, 0, 0, 9, b'p', b'w', b'd', b'!', 0]).await.unwrap();
        Some(tag)
    }

    #[tokio::test]
    async fn a_clear_text_request_never_reaches_the_client() {
        for ssl_request in [false, true] {
            let (port, got) = server(3, b'N').await;
            let guard = start("127.0.0.1", port).await.unwrap();
            assert_eq!(client(guard.port, ssl_request).await, None, "ssl_request {ssl_request}");
            assert!(guard.refused());
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(!got.load(Ordering::SeqCst));
        }
    }

    #[tokio::test]
    async fn a_bracketed_host_is_connected_to_as_sqlx_does() {
        let (port, _) = server(0, b'N').await;
        assert!(start("[127.0.0.1]", port).await.is_ok());
    }

    #[tokio::test]
    async fn other_methods_pass_through() {
        let (port, got) = server(5, b'N').await;
        let guard = start("127.0.0.1", port).await.unwrap();
        assert_eq!(client(guard.port, true).await, Some(b'R'));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(got.load(Ordering::SeqCst), "the MD5 answer was passed on");
        assert!(!guard.refused());
    }
}
