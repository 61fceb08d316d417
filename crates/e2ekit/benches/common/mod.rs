//! Helpers shared by the scenario benches (`scenario`, `metrics_wait`, `soak`): statistics
//! for their reports, and leftover checks through the library's own `e2ekit::sweep` API (no
//! `docker` CLI processes, no hand-written label queries).
//!
//! Included by each bench with `mod common;`; a bench that uses only some of these allows
//! `dead_code` on that line.

use std::time::Duration;

use e2ekit::sweep::EnvironmentInfo;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Res<T> = std::result::Result<T, BoxError>;

// ---------------------------------------------------------------------------------------------
// Statistics. Every function takes values in any order; NaN stands for "no values".

/// A duration in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The values, ascending (`f64::total_cmp`).
pub fn sorted(values: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile (`p` in 0..=100).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let s = sorted(values.iter().copied());
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Median: the middle value, or the mean of the two middle values of an even count.
pub fn median(values: &[f64]) -> f64 {
    let s = sorted(values.iter().copied());
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Smallest and largest value.
pub fn min_max(values: &[f64]) -> (f64, f64) {
    let s = sorted(values.iter().copied());
    (
        s.first().copied().unwrap_or(f64::NAN),
        s.last().copied().unwrap_or(f64::NAN),
    )
}

// ---------------------------------------------------------------------------------------------
// Leftovers, seen the way e2ekit sees them: resources labelled `e2ekit.env`, grouped by
// environment (`e2ekit::sweep::list_environments`).

/// The e2ekit environments on the engine whose name `matches`.
pub async fn environments(matches: impl Fn(&str) -> bool) -> Res<Vec<EnvironmentInfo>> {
    let all = e2ekit::sweep::list_environments(None).await?;
    Ok(all.into_iter().filter(|e| matches(&e.name)).collect())
}

/// Containers (any state) and networks of the environment `name` still on the engine.
pub async fn leftovers(name: &str) -> Res<(usize, usize)> {
    leftovers_on(None, name).await
}

/// [`leftovers`] on the engine at `engine` (`None`: the default engine).
pub async fn leftovers_on(engine: Option<&str>, name: &str) -> Res<(usize, usize)> {
    Ok(e2ekit::sweep::list_environments(engine)
        .await?
        .iter()
        .filter(|e| e.name == name)
        .fold((0, 0), |(c, n), e| (c + e.containers, n + e.networks)))
}

/// Removes every environment whose name `matches`, whoever owns it (containers, networks and
/// shared dir). Tries them all even when one fails, and then reports the first failure;
/// otherwise returns how many containers and networks there were.
pub async fn remove_environments(matches: impl Fn(&str) -> bool) -> Res<usize> {
    let mut removed = 0;
    let mut first_error: Option<BoxError> = None;
    for env in environments(matches).await? {
        match e2ekit::sweep::remove_environment(None, &env.name).await {
            Ok(()) => removed += env.containers + env.networks,
            Err(e) => {
                first_error.get_or_insert(e.into());
            }
        }
    }
    first_error.map_or(Ok(removed), Err)
}
