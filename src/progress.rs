//! Live progress on a terminal: one spinner with the current phase and its elapsed time.
//!
//! Only when stderr is a terminal and not in CI (a CI log would fill with redraws). Every
//! line printed while a spinner is up goes through [`suspend`], so logs and results never
//! interleave with a half-drawn bar.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Show `message` with a spinner and the time since this call (replacing any earlier one).
pub fn phase(message: &str) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    if let Some(old) = BAR.lock().unwrap_or_else(|e| e.into_inner()).replace(bar) {
        old.finish_and_clear();
    }
}

/// Remove the spinner.
pub fn clear() {
    if let Some(bar) = BAR.lock().unwrap_or_else(|e| e.into_inner()).take() {
        bar.finish_and_clear();
    }
}

/// Run `f` (which prints) with the spinner hidden.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}
