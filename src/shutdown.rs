//! SIGINT/SIGTERM handling shared by every long-running command.
//!
//! ECS `StopTask` sends SIGTERM and follows with SIGKILL 30 s later (or `stopTimeout`), and a
//! cancelled GitHub job sends SIGINT. Commands never die on the signal itself: they observe it
//! at safe points (between migrations, while waiting for a lock or a connection) or race it
//! against a statement they then cancel, so locks are released and nothing half-done is recorded.

use tokio::sync::watch;

/// The signals we turn into an orderly stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Signal {
    /// 128 + signal number, the shell convention the contract promises.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }
}

/// A cheap, cloneable view of "has a stop been requested, and by which signal".
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<Signal>>,
}

impl Shutdown {
    /// Install the handlers. Must be called inside the runtime, before any work starts.
    /// `second_exits`: a second signal ends the process at once (the orchestrator, whose
    /// cleanup was done at the first: a cancelled CI job follows with SIGKILL seconds later);
    /// otherwise it is ignored, so a runner finishes rolling back the statement in flight.
    pub fn install(second_exits: bool) -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let first = tokio::select! {
                _ = int.recv() => Signal::Int,
                _ = term.recv() => Signal::Term,
            };
            tracing::warn!("received {}, stopping safely", first.name());
            let _ = tx.send(Some(first));
            // Keep the handlers registered so a second signal does not kill us mid-cleanup;
            // ECS follows with SIGKILL anyway if cleanup takes too long.
            loop {
                let second = tokio::select! {
                    _ = int.recv() => Signal::Int,
                    _ = term.recv() => Signal::Term,
                };
                if second_exits {
                    tracing::warn!("received {} again: exiting now", second.name());
                    std::process::exit(i32::from(second.exit_code()));
                }
                tracing::warn!("already stopping; waiting for the statement in flight to roll back");
            }
        });
        Ok(Shutdown { rx })
    }

    /// A handle that never fires, for code paths and tests that do not listen to signals.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(None);
        std::mem::forget(tx);
        Shutdown { rx }
    }

    /// A handle fired by hand (tests, and callers that turn other events into a stop).
    pub fn manual() -> (Shutdown, Trigger) {
        let (tx, rx) = watch::channel(None);
        (Shutdown { rx }, Trigger(tx))
    }

    /// The signal received so far, if any.
    pub fn requested(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    /// Resolves when a stop is requested (at once if it already was).
    pub async fn wait(&self) -> Signal {
        let mut rx = self.rx.clone();
        loop {
            if let Some(signal) = *rx.borrow_and_update() {
                return signal;
            }
            if rx.changed().await.is_err() {
                // The sender is gone and never fired: never resolve.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Fires a [`Shutdown`] made by [`Shutdown::manual`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<Option<Signal>>);

impl Trigger {
    pub fn fire(&self, signal: Signal) {
        let _ = self.0.send(Some(signal));
    }
}
