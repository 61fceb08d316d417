//! How long to wait and how often to look: the [`WaitPolicy`] and the one polling loop behind
//! readiness, metric waits and monitoring waits.
//!
//! ```
//! use e2ekit::prelude::*;
//!
//! // Give up after 30 s; look every 1 ms at first, growing to every 50 ms.
//! let policy = WaitPolicy::timeout(Duration::from_secs(30))
//!     .min_interval(Duration::from_millis(1))
//!     .max_interval(Duration::from_millis(50));
//! assert_eq!(policy.deadline(), Duration::from_secs(30));
//! ```

use std::time::{Duration, Instant};

/// How long to wait for something, and how often to check.
///
/// [`WaitPolicy::timeout`] sets only the deadline. How often to look is then up to the kind of
/// wait the policy is given to, because their costs differ:
///
/// - readiness (`StartOptions::wait_policy`): from 1 ms, growing by half each attempt up to
///   every 4 ms (probes that are costly for the engine, `CmdProbe`, keep a 50 ms floor);
/// - metric waits (`MetricsOptions::wait`, `Instrumented::wait_policy`, `PromQl::wait`, where
///   every look is a scrape of the target): after 5 ms, each pause an eighth longer than the
///   one before, up to every 250 ms (reached after about 2 s). A change in the first second is
///   seen within tens of milliseconds, while the wait looks 27 times in its first second, and
///   on average at most 9 times a second in a wait of 5 s or more (4.8 over 30 s).
///
/// Intervals set with [`WaitPolicy::min_interval`] or [`WaitPolicy::max_interval`] are used
/// by every kind of wait: the interval starts at `min_interval` and grows by half each attempt
/// up to `max_interval`. A bound that was not set is the wait's own default, moved if needed
/// so that the minimum stays below the maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WaitPolicy {
    pub(crate) timeout: Duration,
    pub(crate) min_interval: Duration,
    pub(crate) max_interval: Duration,
    /// Each pause is the previous one plus `1/growth` of it (plus 0.1 ms, so that growth from
    /// zero gets going).
    growth: u32,
    /// Whether `min_interval` / `max_interval` were set by the caller; a bound that was not
    /// is replaced by the default of the wait the policy is used for.
    set_min: bool,
    set_max: bool,
}

impl Default for WaitPolicy {
    /// One minute, and no intervals set: readiness polls from 1 ms up to every 4 ms, metric
    /// waits use their own intervals (see [`WaitPolicy`]). Readiness is noticed a few
    /// milliseconds after it happens (the bring-up benchmark measured a median lag of 6.6 ms
    /// with a 10 ms cap, 3.5-5 ms with 1-2 ms caps, at no measurable bring-up cost); probes
    /// that are costly for the engine (`CmdProbe`) keep a 50 ms floor.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            min_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
            growth: 2,
            set_min: false,
            set_max: false,
        }
    }
}

impl WaitPolicy {
    /// Gives up after `timeout`, and sets nothing else: the wait the policy is given to polls
    /// at its own default intervals (see [`WaitPolicy`]). Any duration works: one too large
    /// for the clock (`Duration::MAX`) means "wait for ever".
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// First (smallest) pause between attempts, for every kind of wait (raises the largest
    /// pause to it if needed).
    pub fn min_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self.max_interval = self.max_interval.max(interval);
        self.growth = 2;
        self.set_min = true;
        self
    }

    /// Largest pause between attempts, for every kind of wait (lowers the smallest pause to
    /// it if needed).
    pub fn max_interval(mut self, interval: Duration) -> Self {
        self.max_interval = interval;
        self.min_interval = self.min_interval.min(interval);
        self.growth = 2;
        self.set_max = true;
        self
    }

    /// The deadline.
    pub fn deadline(&self) -> Duration {
        self.timeout
    }

    /// Intervals from `min` to `max`, each pause `1/growth` longer than the one before: the
    /// default schedule of a kind of wait, to be used with [`WaitPolicy::or_intervals_of`].
    /// Its deadline means nothing.
    pub(crate) const fn schedule(min: Duration, max: Duration, growth: u32) -> Self {
        Self {
            timeout: Duration::ZERO,
            min_interval: min,
            max_interval: max,
            growth,
            set_min: false,
            set_max: false,
        }
    }

    /// This policy's deadline, polled at the intervals the caller set and, for those not
    /// set, at `defaults`' (the schedule of the kind of wait at hand). With no interval set
    /// that is `defaults`' whole schedule; with one set, the other bound of `defaults` is moved
    /// if needed to keep the minimum below the maximum, and the pauses grow by half (what
    /// [`WaitPolicy::min_interval`] documents).
    pub(crate) fn or_intervals_of(self, defaults: WaitPolicy) -> Self {
        match (self.set_min, self.set_max) {
            (false, false) => Self {
                timeout: self.timeout,
                ..defaults
            },
            (true, true) => self,
            (true, false) => Self {
                max_interval: defaults.max_interval.max(self.min_interval),
                ..self
            },
            (false, true) => Self {
                min_interval: defaults.min_interval.min(self.max_interval),
                ..self
            },
        }
    }

    pub(crate) fn intervals(&self) -> impl Iterator<Item = Duration> {
        let (max, growth) = (self.max_interval, self.growth.max(1));
        // Saturating arithmetic: any interval up to `Duration::MAX` is a valid policy
        // (`mul_f64` and `+` would panic on the way there).
        std::iter::successors(Some(self.min_interval), move |d| {
            Some(
                d.saturating_add(*d / growth)
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
    /// Starts the clock now. Pauses follow `policy`'s intervals as they are: a kind of wait
    /// with its own default intervals first fills them in with [`WaitPolicy::or_intervals_of`].
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

    /// A stand-in for a kind of wait's own schedule.
    const OWN: WaitPolicy =
        WaitPolicy::schedule(Duration::from_millis(5), Duration::from_millis(250), 8);

    #[test]
    fn a_deadline_alone_takes_the_whole_schedule_of_the_wait() {
        let policy = WaitPolicy::timeout(Duration::from_secs(7)).or_intervals_of(OWN);
        assert_eq!(policy.deadline(), Duration::from_secs(7));
        let want: Vec<_> = OWN.intervals().take(100).collect();
        assert_eq!(policy.intervals().take(100).collect::<Vec<_>>(), want);
        // The default policy sets no intervals either.
        let policy = WaitPolicy::default().or_intervals_of(OWN);
        assert_eq!(policy.intervals().nth(2), OWN.intervals().nth(2));
        assert_eq!(policy.deadline(), Duration::from_secs(60));
    }

    #[test]
    fn intervals_the_caller_set_are_kept_and_grow_by_half() {
        let ms = Duration::from_millis;
        let both = WaitPolicy::timeout(ms(100))
            .min_interval(ms(2))
            .max_interval(ms(40));
        assert_eq!(both.or_intervals_of(OWN), both);
        let v: Vec<_> = both.or_intervals_of(OWN).intervals().take(3).collect();
        assert_eq!(
            v,
            [
                ms(2),
                Duration::from_micros(3100),
                Duration::from_micros(4750)
            ]
        );

        // One bound set: the other is the wait's, moved to keep min <= max.
        let max_only = WaitPolicy::timeout(ms(100)).max_interval(ms(20));
        let r = max_only.or_intervals_of(OWN);
        assert_eq!((r.min_interval, r.max_interval), (ms(5), ms(20)));
        let r = WaitPolicy::timeout(ms(100))
            .max_interval(ms(3))
            .or_intervals_of(OWN);
        assert_eq!((r.min_interval, r.max_interval), (ms(3), ms(3)));
        let r = WaitPolicy::timeout(ms(100))
            .min_interval(ms(50))
            .or_intervals_of(OWN);
        assert_eq!((r.min_interval, r.max_interval), (ms(50), ms(250)));
        let r = WaitPolicy::timeout(ms(100))
            .min_interval(ms(900))
            .or_intervals_of(OWN);
        assert_eq!((r.min_interval, r.max_interval), (ms(900), ms(900)));
        assert_eq!(r.intervals().nth(1), Some(ms(900)));
        assert_eq!(r.deadline(), ms(100));
    }

    #[test]
    fn readiness_keeps_its_own_defaults() {
        // Readiness uses a policy as it is: a deadline alone still means 1 ms up to 4 ms.
        let v: Vec<_> = WaitPolicy::timeout(Duration::from_secs(1))
            .intervals()
            .take(6)
            .collect();
        let us = Duration::from_micros;
        assert_eq!(
            v,
            [us(1000), us(1600), us(2500), us(3850), us(4000), us(4000)]
        );
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
