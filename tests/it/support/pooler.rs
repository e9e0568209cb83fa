//! A transaction-mode connection pooler in miniature, for the lock tests: it speaks the
//! PostgreSQL protocol to the client, holds several server sessions (over the throwaway
//! server's unix socket, where authentication is `trust`), and hands each statement group
//! (up to a `Sync` or a simple `Query`) to the next session in turn, as PgBouncer's
//! `pool_mode = transaction` may. Prepared statements follow the client to whichever session
//! runs them (PgBouncer 1.21's `max_prepared_statements`). With one session it is a plain
//! session-mode pool, which is how a test shows the pooler itself works.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

fn read_untagged(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut message = len.to_vec();
    message.resize(u32::from_be_bytes(len) as usize, 0);
    s.read_exact(&mut message[4..]).ok()?;
    Some(message)
}

fn read_tagged(s: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).ok()?;
    let mut message = head.to_vec();
    message.resize(1 + u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize, 0);
    s.read_exact(&mut message[5..]).ok()?;
    Some(message)
}

/// Read a server's messages up to `ReadyForQuery`, passing them to `to` when given.
fn until_ready(server: &mut UnixStream, mut to: Option<&mut TcpStream>) -> Option<()> {
    loop {
        let message = read_tagged(server)?;
        if let Some(client) = to.as_deref_mut() {
            client.write_all(&message).ok()?;
        }
        if message[0] == b'Z' {
            return Some(());
        }
    }
}

/// Whether a group of client messages executes a statement (`Execute` or a simple `Query`).
fn runs_something(mut group: &[u8]) -> bool {
    while group.len() >= 5 {
        if matches!(group[0], b'E' | b'Q') {
            return true;
        }
        let len = u32::from_be_bytes([group[1], group[2], group[3], group[4]]) as usize;
        group = &group[(1 + len).min(group.len())..];
    }
    false
}

/// Listen on loopback; each client gets `sessions` server sessions. Returns the port.
pub(crate) fn start(socket: PathBuf, sessions: usize) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let socket = socket.clone();
            std::thread::spawn(move || serve(client, &socket, sessions));
        }
    });
    port
}

fn serve(mut client: TcpStream, socket: &PathBuf, sessions: usize) -> Option<()> {
    let mut startup = read_untagged(&mut client)?;
    if startup.len() == 8 && startup[4..8] == 80_877_103u32.to_be_bytes() {
        client.write_all(b"N").ok()?;
        startup = read_untagged(&mut client)?;
    }
    let mut servers = Vec::new();
    for i in 0..sessions {
        let mut server = UnixStream::connect(socket).ok()?;
        server.write_all(&startup).ok()?;
        // The client sees the first session's greeting (its pid in BackendKeyData).
        until_ready(&mut server, (i == 0).then_some(&mut client))?;
        servers.push(server);
    }
    let mut parses: Vec<Vec<u8>> = Vec::new();
    let mut replayed = vec![0usize; sessions];
    let mut next = 0;
    let mut group = Vec::new();
    let mut group_parses = Vec::new();
    loop {
        let message = read_tagged(&mut client)?;
        match message[0] {
            b'X' => return Some(()),
            // A named statement is prepared wherever it will run.
            b'P' if message.get(5) != Some(&0) => group_parses.push(message.clone()),
            _ => {}
        }
        group.extend_from_slice(&message);
        if !matches!(message[0], b'S' | b'Q') {
            continue;
        }
        let server = &mut servers[next];
        if replayed[next] < parses.len() {
            for parse in &parses[replayed[next]..] {
                server.write_all(parse).ok()?;
            }
            server.write_all(&[b'S', 0, 0, 0, 4]).ok()?;
            until_ready(server, None)?;
            replayed[next] = parses.len();
        }
        server.write_all(&group).ok()?;
        until_ready(server, Some(&mut client))?;
        // This session has the group's own statements now; the others get them when needed.
        parses.append(&mut group_parses);
        replayed[next] = parses.len();
        // A statement runs where the pool puts it; preparing one (a group without Execute)
        // does not count as a transaction of its own.
        if runs_something(&group) {
            next = (next + 1) % sessions;
        }
        group.clear();
    }
}
