//! A loopback TCP proxy that can act between two requests: it forwards bytes unchanged, and
//! runs a hook once, just before the Nth request containing a marker reaches the upstream.
//!
//! That is how a test changes a secret between the runner's first and second read of it
//! (a rotation landing mid-deploy) without any hook in the binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

type Hook = Box<dyn FnOnce() + Send>;

/// A running proxy; it lives as long as the test process.
pub(crate) struct Proxy {
    pub endpoint: String,
    seen: Arc<AtomicUsize>,
}

impl Proxy {
    /// How many requests with the marker have passed.
    pub(crate) fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

/// Proxy `upstream` (`http://host:port`); run `hook` before forwarding the `nth` request
/// whose bytes contain `marker` (case-insensitive).
pub(crate) fn start(upstream: &str, marker: &str, nth: usize, hook: impl FnOnce() + Send + 'static) -> Proxy {
    let upstream = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let hook: Arc<Mutex<Option<Hook>>> = Arc::new(Mutex::new(Some(Box::new(hook))));
    let marker = marker.to_ascii_lowercase().into_bytes();
    let counter = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else { continue };
            let (mut from_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_server, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
            let (hook, counter, marker) = (hook.clone(), counter.clone(), marker.clone());
            std::thread::spawn(move || forward(client, server, &marker, nth, &counter, &hook));
        }
    });
    Proxy { endpoint, seen }
}

fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    marker: &[u8],
    nth: usize,
    counter: &AtomicUsize,
    hook: &Mutex<Option<Hook>>,
) {
    let mut buf = [0u8; 16 * 1024];
    // The end of the previous read, so a marker split across two reads is still found.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut window = std::mem::take(&mut tail);
        let carried = window.len();
        window.extend(buf[..n].iter().map(u8::to_ascii_lowercase));
        let mut start = 0;
        while let Some(at) = find(&window[start..], marker) {
            let end = start + at + marker.len();
            if end > carried {
                let count = counter.fetch_add(1, Ordering::SeqCst) + 1;
                if count == nth
                    && let Some(hook) = hook.lock().unwrap().take()
                {
                    hook();
                }
            }
            start = end;
        }
        tail = window[window.len().saturating_sub(marker.len() - 1)..].to_vec();
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
