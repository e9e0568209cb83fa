//! stderr logging through `tracing`, with every line passed through the redaction list.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::redact;

/// Set up logging: `-q` warnings only, default info, `-v` debug, `-vv` trace (sqlx included).
/// `SHIPGATE_LOG` takes a full `tracing` filter and wins over the flags.
pub fn init(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "shipgate=info,sqlx=warn",
        (false, 1) => "shipgate=debug,sqlx=info",
        _ => "trace",
    };
    let filter = std::env::var("SHIPGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 0)
        .without_time()
        .try_init();
}

/// A `MakeWriter` whose writer masks secrets in each formatted event before it reaches stderr.
#[derive(Clone, Copy)]
struct RedactingStderr;

struct Line;

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber formats a whole event into one buffer and writes it at once,
        // so a secret is never split across two calls.
        let text = String::from_utf8_lossy(buf);
        crate::progress::suspend(|| std::io::stderr().write_all(redact::redact(&text).as_bytes()))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Self::Writer {
        Line
    }
}
