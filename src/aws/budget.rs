//! A token bucket for the process's `GetLogEvents` calls. CloudWatch Logs throttles that API
//! per account and region at a low rate ("designed for human interaction"), so every stream
//! of every task followed here, shards included, draws from one budget instead of each
//! reading at its own pace.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Calls a second when nothing else is said (`--log-reads-per-second`).
pub const DEFAULT_PER_SECOND: f64 = 5.0;

#[derive(Debug)]
pub struct Budget {
    per_second: f64,
    /// At most this many calls at once after a quiet spell: one second's worth.
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    pub fn new(per_second: f64) -> Budget {
        let per_second = per_second.max(0.01);
        let burst = per_second.max(1.0);
        Budget { per_second, burst, state: Mutex::new((burst, Instant::now())) }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Wait until a call may be made, and count it.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let (tokens, wait) = draw(state.0, now - state.1, self.per_second, self.burst);
                *state = (tokens, now);
                wait
            };
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// The bucket after `elapsed` at `per_second` (holding at most `burst`) and one call drawn
/// from it: the tokens left, or how long to wait before one is there.
fn draw(tokens: f64, elapsed: Duration, per_second: f64, burst: f64) -> (f64, Option<Duration>) {
    let tokens = (tokens + elapsed.as_secs_f64() * per_second).min(burst);
    if tokens >= 1.0 {
        (tokens - 1.0, None)
    } else {
        (tokens, Some(Duration::from_secs_f64((1.0 - tokens) / per_second)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_refills_at_its_rate_and_holds_one_seconds_worth() {
        let ms = Duration::from_millis;
        // (tokens, elapsed, rate, burst) -> (left, wait)
        type Case = (f64, Duration, f64, f64, f64, Option<Duration>);
        let cases: &[Case] = &[
            (5.0, ms(0), 5.0, 5.0, 4.0, None),
            (0.0, ms(0), 5.0, 5.0, 0.0, Some(ms(200))),
            (0.0, ms(100), 5.0, 5.0, 0.5, Some(ms(100))),
            (0.0, ms(200), 5.0, 5.0, 0.0, None),
            (0.0, ms(60_000), 5.0, 5.0, 4.0, None),
            (0.0, ms(0), 0.5, 1.0, 0.0, Some(ms(2000))),
        ];
        for &(tokens, elapsed, rate, burst, left, wait) in cases {
            let (got_left, got_wait) = draw(tokens, elapsed, rate, burst);
            assert!((got_left - left).abs() < 1e-9, "{tokens} {elapsed:?}: left {got_left}");
            let close = match (got_wait, wait) {
                (Some(a), Some(b)) => a.abs_diff(b) < ms(1),
                (a, b) => a == b,
            };
            assert!(close, "{tokens} {elapsed:?}: wait {got_wait:?}, want {wait:?}");
        }
    }
}
