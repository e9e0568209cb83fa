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
    show(ProgressBar::new_spinner(), "{spinner} {msg} [{elapsed}]", message, 120);
}

/// Draw `bar` with `template` and `message`, in place of what was drawn before.
fn show(bar: ProgressBar, template: &str, message: &str, tick_ms: u64) {
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(tick_ms));
    if let Some(old) = BAR.lock().unwrap_or_else(|e| e.into_inner()).replace(bar) {
        old.finish_and_clear();
    }
}

/// Whether live progress may be drawn: stderr is a terminal, text output, and not CI (where a
/// log would fill with redraws).
pub fn wanted(stderr_is_terminal: bool, text_output: bool, env: &dyn Fn(&str) -> Option<String>) -> bool {
    stderr_is_terminal
        && text_output
        && env("CI").is_none()
        && env("GITHUB_ACTIONS").is_none_or(|v| v != "true")
}

/// A bar of `total` tenants (replacing any spinner): done of total, failed, elapsed, rate.
pub fn tenants(total: usize, what: &str) {
    let template = "{bar:30} {pos}/{len} tenants{msg} [{elapsed}, {per_sec}]";
    show(ProgressBar::new(total as u64), template, what, 250);
}

/// One more tenant done; `failed` of them so far failed.
pub fn tenant_done(failed: usize) {
    if let Some(bar) = BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        bar.inc(1);
        if failed > 0 {
            bar.set_message(format!(" ({failed} failed)"));
        }
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

#[cfg(test)]
mod tests {
    use super::wanted;

    #[test]
    fn progress_is_drawn_only_for_a_person_at_a_terminal() {
        let none = |_: &str| None;
        let ci = |k: &str| (k == "CI").then(|| "true".to_string());
        let actions = |k: &str| (k == "GITHUB_ACTIONS").then(|| "true".to_string());
        assert!(wanted(true, true, &none));
        assert!(!wanted(false, true, &none), "a pipe or a file");
        assert!(!wanted(true, false, &none), "--output json");
        assert!(!wanted(true, true, &ci));
        assert!(!wanted(true, true, &actions));
    }
}
