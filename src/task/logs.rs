//! Where a task's containers log, and when every line has been read.
//!
//! Each awslogs container writes to `<awslogs-stream-prefix>/<container>/<task id>` in its
//! group and region, all known from the registered task definition. A stream is read with
//! `GetLogEvents(startFromHead=true)` and forward tokens only: a timestamp cursor loses lines
//! that share a millisecond, and reading from the tail loses the head. At the end of a stream
//! the API returns the token it was given, which is how [`Tail`] knows it has caught up.
//!
//! Lines can still arrive after the task stopped (delivery lags the container), so the
//! follower drains: it keeps reading until every stream returned nothing new on two reads in a
//! row after the stop, and a grace period since `stoppedAt` has passed ([`drained`]).

use std::time::{Duration, Instant};

use crate::taskdef::{ContainerInfo, LogDriver};

/// One awslogs stream of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub container: String,
    pub group: String,
    pub region: Option<String>,
    pub stream: String,
}

/// Where each container's lines can be read, and warnings for those we cannot read (or that
/// can lose lines before they reach CloudWatch).
pub fn sources(containers: &[ContainerInfo], task_id: &str) -> (Vec<Source>, Vec<String>) {
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    for c in containers {
        match &c.log {
            LogDriver::AwsLogs { group, region, prefix: Some(prefix), non_blocking } => {
                if *non_blocking {
                    warnings.push(format!(
                        "container `{}` logs with awslogs mode non-blocking (the ECS default): lines can be dropped before they reach CloudWatch; set \"mode\": \"blocking\" in its logConfiguration options",
                        c.name
                    ));
                }
                sources.push(Source {
                    container: c.name.clone(),
                    group: group.clone(),
                    region: region.clone(),
                    stream: format!("{prefix}/{}/{task_id}", c.name),
                });
            }
            LogDriver::AwsLogs { .. } => warnings.push(format!(
                "container `{}` logs with awslogs but has no awslogs-stream-prefix, so its stream name cannot be known; add \"awslogs-stream-prefix\" to its logConfiguration options",
                c.name
            )),
            LogDriver::Other(driver) => warnings.push(format!(
                "container `{}` logs with the `{driver}` driver, not awslogs: its lines cannot be shown here; read them where `{driver}` sends them",
                c.name
            )),
            LogDriver::None => {
                warnings.push(format!("container `{}` has no logConfiguration: its output is discarded", c.name))
            }
        }
    }
    (sources, warnings)
}

/// The result of one `GetLogEvents` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// `ResourceNotFoundException`: the container has not written its first line yet.
    Missing,
    Page {
        events: usize,
        bytes: usize,
        next_forward_token: Option<String>,
    },
}

/// How far one stream has been read.
#[derive(Debug, Clone)]
pub struct Tail {
    pub source: Source,
    token: Option<String>,
    exists: bool,
    unchanged: u32,
    unavailable: Option<String>,
    pub lines: u64,
    /// Reads in a row that brought nothing while the task ran.
    idle: u32,
    /// A silent stream is read again no sooner than this.
    next_read: Option<Instant>,
}

/// A page holds at most 10,000 events or 1 MiB (each event counting its bytes plus 26); a page
/// near either limit means more is waiting now, not at the next tick.
pub fn page_was_full(events: usize, bytes: usize) -> bool {
    const MAX_EVENTS: usize = 10_000;
    const MAX_BYTES: usize = 1 << 20;
    const MAX_EVENT: usize = 256 * 1024;
    events >= MAX_EVENTS || bytes + MAX_EVENT >= MAX_BYTES
}

impl Tail {
    pub fn new(source: Source) -> Tail {
        Tail {
            source,
            token: None,
            exists: false,
            unchanged: 0,
            unavailable: None,
            lines: 0,
            idle: 0,
            next_read: None,
        }
    }

    /// The token to pass to the next `GetLogEvents` (none for the first read).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn exists(&self) -> bool {
        self.exists
    }

    /// Record a read; true when the stream should be read again at once.
    pub fn record(&mut self, read: Read) -> bool {
        match read {
            Read::Missing => {
                self.unchanged += 1;
                false
            }
            Read::Page { events, bytes, next_forward_token } => {
                self.exists = true;
                let moved = next_forward_token.is_some() && next_forward_token != self.token;
                if events == 0 && !moved {
                    self.unchanged += 1;
                } else {
                    self.unchanged = 0;
                }
                if next_forward_token.is_some() {
                    self.token = next_forward_token;
                }
                self.lines += events as u64;
                // An empty page with a new token is a gap in the stream, not its end.
                page_was_full(events, bytes) || (events == 0 && moved)
            }
        }
    }

    /// Give up on a stream we may not read (access denied); it no longer holds up the drain.
    pub fn give_up(&mut self, why: String) {
        self.unavailable = Some(why);
    }

    pub fn unavailable(&self) -> Option<&str> {
        self.unavailable.as_deref()
    }

    /// The task stopped: from now on, count reads that bring nothing new, and read every
    /// stream at every drain tick.
    pub fn begin_drain(&mut self) {
        self.unchanged = 0;
        self.idle = 0;
        self.next_read = None;
    }

    /// Whether the stream is due for a read at `now` (a silent one waits longer each time).
    pub fn due(&self, now: Instant) -> bool {
        self.next_read.is_none_or(|at| now >= at)
    }

    /// After the reads of one tick while the task runs: a stream that brought lines is read
    /// at the next tick, a silent one later and later ([`idle_pause`]).
    pub fn settle(&mut self, read_lines: bool, now: Instant, tick: Duration) {
        if read_lines {
            self.idle = 0;
            self.next_read = None;
        } else {
            self.idle += 1;
            self.next_read = Some(now + idle_pause(self.idle, tick));
        }
    }

    fn caught_up(&self) -> bool {
        self.unavailable.is_some() || self.unchanged >= 2
    }
}

/// The longest a silent stream of a running task goes unread: its lines are never lost (the
/// drain after the stop reads every stream to its end), only shown later.
pub const MAX_IDLE_PAUSE: Duration = Duration::from_secs(30);

/// How long to wait before reading a stream again after `idle` silent reads in a row: the
/// tick for the first two, then twice as long each time, up to [`MAX_IDLE_PAUSE`].
pub fn idle_pause(idle: u32, tick: Duration) -> Duration {
    let doublings = idle.saturating_sub(2).min(16);
    tick.saturating_mul(1 << doublings).min(MAX_IDLE_PAUSE.max(tick))
}

/// Every stream returned nothing new on two reads in a row since the stop, and the grace
/// period since `stoppedAt` has passed.
pub fn drained(tails: &[Tail], since_stop: Duration, grace: Duration) -> bool {
    since_stop >= grace && tails.iter().all(Tail::caught_up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_stream_is_read_less_and_less_often_up_to_thirty_seconds() {
        let s = Duration::from_secs;
        // (silent reads in a row, tick) -> pause before the next read
        let cases = [(1, s(3), s(3)), (2, s(3), s(3)), (3, s(3), s(6)), (4, s(3), s(12)), (5, s(3), s(24))];
        for (idle, tick, want) in cases {
            assert_eq!(idle_pause(idle, tick), want, "{idle} silent reads at a {tick:?} tick");
        }
        assert_eq!(idle_pause(6, s(3)), MAX_IDLE_PAUSE);
        assert_eq!(idle_pause(1000, s(3)), MAX_IDLE_PAUSE);
        // A tick longer than the ceiling is never shortened.
        assert_eq!(idle_pause(9, s(60)), s(60));
    }

    #[test]
    fn lines_or_the_stop_bring_a_silent_stream_back_to_every_tick() {
        let tick = Duration::from_secs(3);
        let now = Instant::now();
        let mut tail = Tail::new(source());
        assert!(tail.due(now));
        for _ in 0..5 {
            tail.settle(false, now, tick);
        }
        assert!(!tail.due(now + Duration::from_secs(23)));
        assert!(tail.due(now + Duration::from_secs(24)));
        tail.settle(true, now, tick);
        assert!(tail.due(now));
        tail.settle(false, now, tick);
        assert!(!tail.due(now));
        tail.begin_drain();
        assert!(tail.due(now), "the drain reads every stream at every drain tick");
    }

    fn source() -> Source {
        Source { container: "app".into(), group: "/g".into(), region: None, stream: "p/app/t".into() }
    }

    fn page(events: usize, token: &str) -> Read {
        Read::Page { events, bytes: events * 40, next_forward_token: Some(token.into()) }
    }

    #[test]
    fn stream_names_follow_the_awslogs_convention() {
        let containers = vec![
            ContainerInfo {
                name: "migrate".into(),
                essential: true,
                log: LogDriver::AwsLogs {
                    group: "/ecs/m".into(),
                    region: None,
                    prefix: Some("db".into()),
                    non_blocking: false,
                },
            },
            ContainerInfo { name: "fluent".into(), essential: false, log: LogDriver::Other("splunk".into()) },
            ContainerInfo {
                name: "x".into(),
                essential: false,
                log: LogDriver::AwsLogs {
                    group: "/g".into(),
                    region: None,
                    prefix: Some("p".into()),
                    non_blocking: true,
                },
            },
        ];
        let (sources, warnings) = sources(&containers, "abc123");
        let streams: Vec<&str> = sources.iter().map(|s| s.stream.as_str()).collect();
        assert_eq!(streams, ["db/migrate/abc123", "p/x/abc123"]);
        assert_eq!(warnings.len(), 2);
        assert!(warnings[0].contains("`splunk` driver"));
        assert!(warnings[1].contains("non-blocking"));
    }

    #[test]
    fn full_pages_are_read_again_at_once() {
        let cases = [(10_000, 400_000, true), (9_999, 400_000, false), (3_000, 800_000, true), (0, 0, false)];
        for (events, bytes, full) in cases {
            assert_eq!(page_was_full(events, bytes), full, "{events} {bytes}");
        }
    }

    #[test]
    fn drain_needs_two_empty_reads_after_the_stop_and_the_grace_period() {
        let grace = Duration::from_secs(3);
        let mut t = Tail::new(source());
        assert!(!t.record(Read::Missing));
        assert!(!t.exists());
        t.record(page(5, "f/1"));
        t.record(page(0, "f/1"));
        t.record(page(0, "f/1"));
        t.begin_drain();
        // Earlier empty reads do not count once the task has stopped.
        assert!(!drained(std::slice::from_ref(&t), grace, grace));
        t.record(page(0, "f/1"));
        assert!(!drained(std::slice::from_ref(&t), grace, grace));
        // Late lines reset the count.
        t.record(page(2, "f/2"));
        t.record(page(0, "f/2"));
        t.record(page(0, "f/2"));
        assert!(!drained(std::slice::from_ref(&t), Duration::from_secs(2), grace));
        assert!(drained(std::slice::from_ref(&t), grace, grace));
        assert_eq!(t.lines, 7);
        assert_eq!(t.token(), Some("f/2"));
    }

    #[test]
    fn a_stream_that_never_appears_drains_and_gaps_are_read_through() {
        let mut never = Tail::new(source());
        never.begin_drain();
        never.record(Read::Missing);
        never.record(Read::Missing);
        assert!(drained(&[never], Duration::from_secs(9), Duration::from_secs(3)));

        let mut gap = Tail::new(source());
        assert!(gap.record(page(0, "f/9")), "an empty page with a new token is not the end");
        assert!(!gap.record(page(0, "f/9")));
    }

    #[test]
    fn a_stream_we_may_not_read_does_not_hold_up_the_drain() {
        let mut t = Tail::new(source());
        t.begin_drain();
        t.give_up("AccessDeniedException".into());
        assert!(drained(&[t], Duration::from_secs(5), Duration::from_secs(3)));
    }
}
