//! One `DescribeTasks` call per tick for every task this process follows: the shards of a
//! tenant step, a deploy's tasks and `task attach` all share one schedule, so the ECS calls a
//! run makes stay flat in the number of tasks (up to 100 per call, per cluster).
//!
//! There is no background task to start or stop: whichever follower wants the next round
//! when it is due makes the call for everyone, and the others wait for its answer. A round
//! abandoned halfway (its follower was cancelled) is taken over by the next one that asks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_ecs::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ecs::{DESCRIBE_BATCH, describe_tasks};
use super::error::Failure;
use crate::task::view::TaskView;

/// What a round of `DescribeTasks` said about one task.
pub type Polled = Result<Option<TaskView>, Failure>;

/// The process's shared schedule of `DescribeTasks` calls.
#[derive(Clone)]
pub struct TaskPoller {
    shared: Arc<Shared>,
}

struct Shared {
    ecs: Client,
    state: Mutex<State>,
    /// The number of the last finished round.
    rounds: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Watched tasks by (cluster, ARN).
    watched: BTreeMap<(String, String), Watched>,
    /// A round is being made.
    polling: bool,
    /// When the next round may start: a tick after the last one started.
    next_due: Option<Instant>,
    round: u64,
}

struct Watched {
    watchers: usize,
    /// The smallest tick any of its followers asked for.
    tick: Duration,
    /// The latest answer, and the round it came from.
    last: Option<(u64, Polled)>,
}

impl TaskPoller {
    pub fn new(ecs: Client) -> TaskPoller {
        let (rounds, _) = watch::channel(0);
        TaskPoller { shared: Arc::new(Shared { ecs, state: Mutex::default(), rounds }) }
    }

    /// Watch a task until the returned [`Watcher`] is dropped. `tick` is how often its
    /// follower wants news; rounds run at the smallest tick of everything watched.
    pub fn watch(&self, cluster: &str, arn: &str, tick: Duration) -> Watcher {
        let key = (cluster.to_string(), arn.to_string());
        let mut state = self.shared.lock();
        let entry = state.watched.entry(key.clone()).or_insert(Watched { watchers: 0, tick, last: None });
        entry.watchers += 1;
        entry.tick = entry.tick.min(tick);
        let seen = entry.last.as_ref().map_or(0, |(round, _)| *round);
        drop(state);
        Watcher { shared: self.shared.clone(), rounds: self.shared.rounds.subscribe(), key, seen }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One follower's view of the shared schedule.
pub struct Watcher {
    shared: Arc<Shared>,
    rounds: watch::Receiver<u64>,
    key: (String, String),
    /// The last round this watcher returned.
    seen: u64,
}

enum Turn {
    Answer(Box<Polled>),
    Poll(Vec<(String, String)>),
    Wait(Option<Instant>),
}

impl Watcher {
    /// The task as the next round saw it: at once when a round this watcher has not seen
    /// already answered, else after the next one (made here when it is due and nobody
    /// else is making it).
    pub async fn next(&mut self) -> Polled {
        loop {
            match self.turn() {
                Turn::Answer(polled) => return *polled,
                Turn::Poll(keys) => {
                    let abandoned = Abandoned(&self.shared);
                    let answers = poll(&self.shared.ecs, &keys).await;
                    std::mem::forget(abandoned);
                    self.publish(keys, answers);
                }
                Turn::Wait(until) => {
                    // Without a due time a round is under way: its maker wakes everyone when
                    // it is done, and if it was cancelled, another one tries 200 ms later.
                    let until = until.unwrap_or_else(|| Instant::now() + Duration::from_millis(200));
                    tokio::select! {
                        _ = self.rounds.changed() => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
            }
        }
    }

    fn turn(&mut self) -> Turn {
        let mut state = self.shared.lock();
        if let Some((round, polled)) = state.watched.get(&self.key).and_then(|w| w.last.as_ref())
            && *round > self.seen
        {
            self.seen = *round;
            return Turn::Answer(Box::new(polled.clone()));
        }
        let now = Instant::now();
        if state.polling {
            return Turn::Wait(None);
        }
        match state.next_due {
            Some(due) if due > now => Turn::Wait(Some(due)),
            _ => {
                state.polling = true;
                let tick = state.watched.values().map(|w| w.tick).min().unwrap_or(Duration::from_secs(3));
                state.next_due = Some(now + crate::duration::jittered(tick));
                Turn::Poll(state.watched.keys().cloned().collect())
            }
        }
    }

    fn publish(&self, keys: Vec<(String, String)>, answers: Vec<Polled>) {
        let mut state = self.shared.lock();
        state.round += 1;
        let round = state.round;
        for (key, polled) in keys.into_iter().zip(answers) {
            if let Some(w) = state.watched.get_mut(&key) {
                w.last = Some((round, polled));
            }
        }
        state.polling = false;
        drop(state);
        self.shared.rounds.send_replace(round);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if let Some(w) = state.watched.get_mut(&self.key) {
            w.watchers -= 1;
            if w.watchers == 0 {
                state.watched.remove(&self.key);
            }
        }
    }
}

/// Frees the round when the follower making it is cancelled halfway.
struct Abandoned<'a>(&'a Shared);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.polling = false;
        state.next_due = None;
    }
}

/// One round: every watched task, in calls of up to [`DESCRIBE_BATCH`] per cluster, answered
/// in the order of `keys`. A failed call is the answer for each of its tasks.
async fn poll(ecs: &Client, keys: &[(String, String)]) -> Vec<Polled> {
    let mut answers: Vec<Option<Polled>> = vec![None; keys.len()];
    let mut by_cluster: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, (cluster, _)) in keys.iter().enumerate() {
        by_cluster.entry(cluster).or_default().push(i);
    }
    for (cluster, indexes) in by_cluster {
        for chunk in indexes.chunks(DESCRIBE_BATCH) {
            let arns: Vec<String> = chunk.iter().map(|&i| keys[i].1.clone()).collect();
            match describe_tasks(ecs, cluster, &arns).await {
                Ok(views) => {
                    for (&i, view) in chunk.iter().zip(views) {
                        answers[i] = Some(Ok(view));
                    }
                }
                Err(f) => {
                    for &i in chunk {
                        answers[i] = Some(Err(f.clone()));
                    }
                }
            }
        }
    }
    answers.into_iter().map(|a| a.unwrap_or(Ok(None))).collect()
}
