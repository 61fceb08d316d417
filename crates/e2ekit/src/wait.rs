//! How long to wait and how often to look: the [`WaitPolicy`] and the one polling loop behind
//! readiness, metric waits and monitoring waits.
//!
//! ```
//! use e2ekit::prelude::*;
//!
//! // Give up after 30 s; look every 1 ms at first, growing to every 50 ms.
//! let policy = WaitPolicy::timeout(Duration::from_secs(30)).max_interval(Duration::from_millis(50));
//! assert_eq!(policy.deadline(), Duration::from_secs(30));
//! ```

use std::time::{Duration, Instant};

/// How long to wait for something, and how often to check.
///
/// The interval starts at `min_interval` and grows by half each attempt up to `max_interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPolicy {
    pub(crate) timeout: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
}

impl Default for WaitPolicy {
    /// One minute, polling from 1 ms up to every 4 ms. Readiness is noticed a few
    /// milliseconds after it happens (the bring-up benchmark measured a median lag of 6.6 ms
    /// with a 10 ms cap, 3.5-5 ms with 1-2 ms caps, at no measurable bring-up cost); probes
    /// that are costly for the engine (`CmdProbe`) keep a 50 ms floor.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            min_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
        }
    }
}

impl WaitPolicy {
    /// Gives up after `timeout`, with the default polling intervals. Any duration works:
    /// one too large for the clock (`Duration::MAX`) means "wait for ever".
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// First (smallest) pause between attempts.
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self.max_interval = self.max_interval.max(interval);
        self
    }

    /// Largest pause between attempts.
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval;
        self.min_interval = self.min_interval.min(interval);
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn intervals(&self) -> impl Iterator<Item = Duration> {
        let max = self.max_interval;
        // Saturating arithmetic: any interval up to `Duration::MAX` is a valid policy
        // (`mul_f64` and `+` would panic on the way there).
        std::iter::successors(Some(self.min_interval), move |d| {
            Some(
                d.saturating_add(*d / 2)
                    .saturating_add(Duration::from_micros(100))
                    .min(max),
            )
        })
    }
}

/// One wait in progress: the deadline, the growing pauses and the attempt count.
///
/// Every waiting loop in the crate drives one of these, so deadlines, intervals and the
/// numbers reported in errors mean the same everywhere:
///
/// ```text
/// let mut poll = Poll::new(policy);
/// loop {
///     poll.attempt();
///     if check().await.is_ok() { return Ok(()) }
///     match poll.next_pause() { Some(p) => sleep(p).await, None => return Err(timed out) }
/// }
/// ```
pub(crate) struct Poll {
    started: Instant,
    deadline: Instant,
    max_interval: Duration,
    intervals: Box<dyn Iterator<Item = Duration> + Send + Sync>,
    attempts: u32,
}

impl Poll {
    /// Starts the clock now.
    pub(crate) fn new(policy: WaitPolicy) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: deadline_after(started, policy.timeout),
            max_interval: policy.max_interval,
            intervals: Box::new(policy.intervals()),
            attempts: 0,
        }
    }

    /// Counts one attempt; returns its number (1-based).
    pub(crate) fn attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// Attempts so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the wait began.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Time left before the deadline (zero once it passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// The pause before the next attempt, never past the deadline; `None` once the deadline
    /// has passed (the wait failed).
    pub(crate) fn next_pause(&mut self) -> Option<Duration> {
        let remaining = self.remaining();
        if remaining.is_zero() {
            return None;
        }
        Some(
            self.intervals
                .next()
                .unwrap_or(self.max_interval)
                .min(remaining),
        )
    }
}

/// `start + timeout`, or, when `Instant` cannot represent that, the latest instant it can
/// within a century: a deadline that far away means "wait for ever", never a panic.
fn deadline_after(start: Instant, timeout: Duration) -> Instant {
    if let Some(deadline) = start.checked_add(timeout) {
        return deadline;
    }
    let mut far = timeout.min(FOREVER);
    loop {
        if let Some(deadline) = start.checked_add(far) {
            return deadline;
        }
        far /= 2;
    }
}

/// What "for ever" is when a deadline cannot be represented.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl std::fmt::Debug for Poll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poll")
            .field("elapsed", &self.elapsed())
            .field("remaining", &self.remaining())
            .field("attempts", &self.attempts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_grow_from_min_to_max() {
        let p = WaitPolicy::timeout(Duration::from_secs(1));
        let v: Vec<_> = p.intervals().take(20).collect();
        assert_eq!(v[0], Duration::from_millis(1));
        assert!(v.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(v.last().copied(), Some(Duration::from_millis(4)));
    }

    #[test]
    fn poll_counts_attempts_and_stops_at_the_deadline() {
        let mut poll = Poll::new(WaitPolicy::timeout(Duration::from_millis(20)));
        assert_eq!(poll.attempt(), 1);
        let first = poll.next_pause().expect("before the deadline");
        assert!(first <= Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(poll.next_pause(), None);
        assert_eq!(poll.attempts(), 1);
    }

    #[test]
    fn any_policy_polls_without_panicking() {
        let extremes = [Duration::ZERO, Duration::from_nanos(1), Duration::MAX];
        for timeout in extremes {
            for min in extremes {
                for max in extremes {
                    let policy = WaitPolicy::timeout(timeout)
                        .min_interval(min)
                        .max_interval(max);
                    // Enough steps for a 1.5x growth from 1 ns to overflow any Duration.
                    let steps: Vec<_> = policy.intervals().take(300).collect();
                    assert!(steps.windows(2).all(|w| w[1] >= w[0]), "{policy:?}");
                    assert!(
                        steps.iter().all(|d| *d <= policy.max_interval),
                        "{policy:?}"
                    );
                    let mut poll = Poll::new(policy);
                    for _ in 0..300 {
                        poll.attempt();
                        if let Some(pause) = poll.next_pause() {
                            assert!(pause <= poll.deadline.duration_since(poll.started));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn intervals_reach_a_huge_maximum_and_stay_there() {
        let policy = WaitPolicy::timeout(Duration::MAX).max_interval(Duration::MAX);
        let last = policy.intervals().nth(500).expect("endless");
        assert_eq!(last, Duration::MAX);
        let policy = WaitPolicy::timeout(Duration::MAX).min_interval(Duration::MAX);
        assert_eq!(
            policy.intervals().take(3).collect::<Vec<_>>(),
            [Duration::MAX; 3]
        );
    }

    #[test]
    fn an_unrepresentable_deadline_means_wait_for_ever() {
        let mut poll = Poll::new(WaitPolicy::timeout(Duration::MAX));
        assert!(poll.remaining() > Duration::from_secs(365 * 24 * 3600));
        assert!(poll.next_pause().is_some());
    }
}
