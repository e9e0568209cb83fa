//! Durations as operators write them: on flags (`--lock-timeout 300s`) and in migration
//! headers (`-- shipgate:statement-timeout=10min`).
//!
//! The units are PostgreSQL's own (`ms`, `s`, `min`, `h`) so a value can be copied from a
//! `postgresql.conf`; a bare number means seconds; `0` and `off` mean "no limit".

use std::time::Duration;

/// `tick` ±10 %, so that pollers started together (shards, services, processes) do not call
/// AWS in lockstep.
pub fn jittered(tick: Duration) -> Duration {
    tick.mul_f64(0.9 + fastrand::f64() * 0.2)
}

/// Parse `300ms`, `5s`, `1.5s`, `10min`, `2h`, `30` (seconds), `0` or `off`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") || t.eq_ignore_ascii_case("none") {
        return Ok(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (examples: 500ms, 5s, 10min, 1h, off)"))?;
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        other => {
            return Err(format!("`{text}`: unknown unit `{other}` (use ms, s, min, h or d, or off)"));
        }
    };
    let seconds = value * seconds_per_unit;
    if !seconds.is_finite() || seconds > 365.0 * 86400.0 {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The value for `SET lock_timeout` / `SET statement_timeout`: milliseconds, `0` = disabled.
pub fn pg_setting(d: Duration) -> String {
    if d.is_zero() {
        "0".to_string()
    } else {
        // PostgreSQL's resolution is a millisecond; never round a tiny limit down to "off".
        format!("{}ms", d.as_millis().max(1))
    }
}

/// Short human form: `off`, `250ms`, `5s`, `1.5s`, `10min`.
pub fn human(d: Duration) -> String {
    if d.is_zero() {
        return "off".to_string();
    }
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{}min", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_units_operators_write() {
        let ok = [
            ("500ms", 500),
            ("5s", 5_000),
            ("1.5s", 1_500),
            ("30", 30_000),
            ("10min", 600_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("0", 0),
            ("off", 0),
            (" 7s ", 7_000),
        ];
        for (text, ms) in ok {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for bad in ["", "s", "5 parsecs", "-1s", "1e9h", "five"] {
            assert!(parse(bad).is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn formats_for_postgres_and_humans() {
        let cases = [
            (0, "0", "off"),
            (1, "1ms", "1ms"),
            (250, "250ms", "250ms"),
            (5_000, "5000ms", "5s"),
            (1_500, "1500ms", "1.5s"),
            (600_000, "600000ms", "10min"),
        ];
        for (ms, pg, h) in cases {
            let d = Duration::from_millis(ms);
            assert_eq!(pg_setting(d), pg);
            assert_eq!(human(d), h);
        }
    }
}
