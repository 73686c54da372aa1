//! Retry delays.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::JobId;

/// How long a failed job waits before it is retried.
///
/// A `Backoff` is a value: [`delay`](Backoff::delay) is a pure function of the attempt number that
/// saturates instead of overflowing and never panics. [`Jitter`] spreads retries out so that jobs that
/// failed together do not all come back together; it is drawn from a generator seeded by the backoff's seed,
/// the job's id and the attempt, so a seeded test is reproducible whatever order threads run in.
///
/// The default is exponential: 1 s, doubling per attempt, capped at 15 minutes, with ±20 % proportional
/// jitter. With the default ten attempts a job that always fails is dead-lettered after about 8½ minutes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Backoff, Jitter};
///
/// let backoff = Backoff::exponential(Duration::from_millis(100), 2.0)
///     .max(Duration::from_secs(10));
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(4), Duration::from_millis(800));
/// assert_eq!(backoff.delay(1000), Duration::from_secs(10));
///
/// let jittered = backoff.jitter(Jitter::Full).seed(7);
/// let d = jittered.delay_for(leasequeue::JobId::from_u64(1), 4);
/// assert!(d <= Duration::from_millis(800));
/// ```
#[derive(Clone)]
pub struct Backoff {
    kind: Kind,
    max: Option<Duration>,
    jitter: Jitter,
    seed: u64,
}

#[derive(Clone)]
enum Kind {
    None,
    Fixed(Duration),
    Linear(Duration),
    Exponential { initial: Duration, factor: f64 },
    Custom(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

/// Randomisation applied on top of a [`Backoff`]'s delay.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use leasequeue::{Backoff, Jitter, JobId};
///
/// let backoff = Backoff::fixed(Duration::from_secs(10)).jitter(Jitter::Equal);
/// let d = backoff.delay_for(JobId::from_u64(3), 1);
/// assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// The delay as computed.
    None,
    /// Uniform in `[0, delay]` ("full jitter").
    Full,
    /// Uniform in `[delay / 2, delay]` ("equal jitter").
    Equal,
    /// Uniform in `[delay × (1 − p), delay × (1 + p)]`; `p` is clamped to `[0, 1]`.
    Proportional(f64),
}

impl Backoff {
    /// Retry at once.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(leasequeue::Backoff::none().delay(3), std::time::Duration::ZERO);
    /// ```
    pub fn none() -> Self {
        Self::with_kind(Kind::None)
    }

    /// The same delay before every retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Backoff::fixed(Duration::from_secs(5));
    /// assert_eq!(b.delay(1), b.delay(9));
    /// ```
    pub fn fixed(delay: Duration) -> Self {
        Self::with_kind(Kind::Fixed(delay))
    }

    /// `step × attempt`: 1 step after the first failure, 2 after the second, and so on.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Backoff::linear(Duration::from_secs(2));
    /// assert_eq!(b.delay(3), Duration::from_secs(6));
    /// ```
    pub fn linear(step: Duration) -> Self {
        Self::with_kind(Kind::Linear(step))
    }

    /// `initial × factor^(attempt − 1)`. A `factor` below 1 or not a number is taken as 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Backoff::exponential(Duration::from_secs(1), 3.0);
    /// assert_eq!(b.delay(3), Duration::from_secs(9));
    /// ```
    pub fn exponential(initial: Duration, factor: f64) -> Self {
        let factor = if factor >= 1.0 { factor } else { 1.0 };
        Self::with_kind(Kind::Exponential { initial, factor })
    }

    /// A delay computed by `f(attempt)`.
    ///
    /// `f` should not panic; if it does, the queue catches the panic (counted and reported as a
    /// [`UserPanic`](crate::UserPanic)) and retries without delay.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// // Sidekiq's formula without its jitter: attempt⁴ + 15 seconds.
    /// let b = leasequeue::Backoff::custom(|n| Duration::from_secs(u64::from(n).pow(4) + 15));
    /// assert_eq!(b.delay(2), Duration::from_secs(31));
    /// ```
    pub fn custom(f: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self::with_kind(Kind::Custom(Arc::new(f)))
    }

    fn with_kind(kind: Kind) -> Self {
        Backoff { kind, max: None, jitter: Jitter::None, seed: rand::random() }
    }

    /// Caps the delay (before jitter).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Backoff::linear(Duration::from_secs(1)).max(Duration::from_secs(3));
    /// assert_eq!(b.delay(10), Duration::from_secs(3));
    /// ```
    pub fn max(mut self, cap: Duration) -> Self {
        self.max = Some(cap);
        self
    }

    /// Sets the jitter applied by [`delay_for`](Backoff::delay_for) (and so by the queue).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Backoff, Jitter, JobId};
    /// let b = Backoff::fixed(Duration::from_secs(1)).jitter(Jitter::None);
    /// assert_eq!(b.delay_for(JobId::from_u64(1), 1), Duration::from_secs(1));
    /// ```
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Seeds the jitter. By default the seed is random; fix it to make a test reproducible.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Backoff, Jitter, JobId};
    /// let b = Backoff::fixed(Duration::from_secs(60)).jitter(Jitter::Full).seed(42);
    /// let again = b.clone();
    /// assert_eq!(b.delay_for(JobId::from_u64(9), 2), again.delay_for(JobId::from_u64(9), 2));
    /// ```
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The delay after failed attempt `attempt` (1 for the first), capped, without jitter.
    ///
    /// Attempt 0 is treated as 1. Saturates at the cap, or at `Duration::MAX` without one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let b = leasequeue::Backoff::exponential(Duration::from_secs(1), 2.0);
    /// assert_eq!(b.delay(0), Duration::from_secs(1));
    /// assert_eq!(b.delay(u32::MAX), Duration::MAX);
    /// ```
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let base = match &self.kind {
            Kind::None => Duration::ZERO,
            Kind::Fixed(d) => *d,
            Kind::Linear(step) => step.saturating_mul(n),
            Kind::Exponential { initial, factor } => {
                let exp = i32::try_from(n - 1).unwrap_or(i32::MAX);
                let secs = initial.as_secs_f64() * factor.powi(exp);
                Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
            }
            Kind::Custom(f) => f(n),
        };
        match self.max {
            Some(cap) => base.min(cap),
            None => base,
        }
    }

    /// The delay after failed attempt `attempt` of job `job`, with jitter.
    ///
    /// The jitter is drawn from a generator seeded by this backoff's seed, the job id and the attempt, so
    /// the same seed gives the same delays in every run, while jobs that failed together still spread out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use leasequeue::{Backoff, Jitter, JobId};
    /// let b = Backoff::fixed(Duration::from_secs(10)).jitter(Jitter::Proportional(0.5)).seed(1);
    /// let d = b.delay_for(JobId::from_u64(1), 1);
    /// assert!(d >= Duration::from_secs(5) && d <= Duration::from_secs(15));
    /// ```
    pub fn delay_for(&self, job: JobId, attempt: u32) -> Duration {
        let base = self.delay(attempt);
        if matches!(self.jitter, Jitter::None) || base.is_zero() {
            return base;
        }
        let seed = self.seed
            ^ job.as_u64().wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ u64::from(attempt).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        self.jitter.apply(base, &mut SmallRng::seed_from_u64(seed))
    }
}

impl Jitter {
    /// Applies this jitter to `delay`, drawing from `rng`. Saturates; never panics.
    pub(crate) fn apply<R: Rng + ?Sized>(self, delay: Duration, rng: &mut R) -> Duration {
        let scale = |f: f64| Duration::try_from_secs_f64(delay.as_secs_f64() * f).unwrap_or(Duration::MAX);
        match self {
            Jitter::None => delay,
            Jitter::Full => scale(rng.random_range(0.0..=1.0)),
            Jitter::Equal => scale(rng.random_range(0.5..=1.0)),
            Jitter::Proportional(p) => {
                let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
                scale(rng.random_range(1.0 - p..=1.0 + p))
            }
        }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::exponential(Duration::from_secs(1), 2.0)
            .max(Duration::from_secs(15 * 60))
            .jitter(Jitter::Proportional(0.2))
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Backoff");
        match &self.kind {
            Kind::None => d.field("kind", &"none"),
            Kind::Fixed(delay) => d.field("fixed", delay),
            Kind::Linear(step) => d.field("linear", step),
            Kind::Exponential { initial, factor } => d.field("initial", initial).field("factor", factor),
            Kind::Custom(_) => d.field("kind", &"custom"),
        };
        d.field("max", &self.max).field("jitter", &self.jitter).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_inputs_saturate() {
        let b = Backoff::exponential(Duration::MAX, f64::MAX);
        assert_eq!(b.delay(u32::MAX), Duration::MAX);
        assert_eq!(Backoff::linear(Duration::MAX).delay(u32::MAX), Duration::MAX);
        assert_eq!(Backoff::exponential(Duration::from_secs(1), f64::NAN).delay(5), Duration::from_secs(1));
        let j = Backoff::fixed(Duration::MAX).jitter(Jitter::Proportional(f64::INFINITY));
        let _ = j.delay_for(JobId::from_u64(1), 1);
        let j = Backoff::fixed(Duration::MAX).jitter(Jitter::Proportional(f64::NAN));
        assert_eq!(j.delay_for(JobId::from_u64(1), 1), Duration::MAX);
    }

    #[test]
    fn jitter_stays_in_bounds_and_varies_by_job() {
        let b = Backoff::fixed(Duration::from_secs(100)).jitter(Jitter::Equal).seed(3);
        let delays: Vec<_> = (1..50).map(|id| b.delay_for(JobId::from_u64(id), 1)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(50) && *d <= Duration::from_secs(100)));
        assert!(delays.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn default_is_capped_exponential() {
        let b = Backoff::default().jitter(Jitter::None);
        assert_eq!(b.delay(1), Duration::from_secs(1));
        assert_eq!(b.delay(5), Duration::from_secs(16));
        assert_eq!(b.delay(30), Duration::from_secs(900));
    }
}
