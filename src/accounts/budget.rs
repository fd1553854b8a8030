//! The request budget of one Ivy account: a token bucket shared by every resource of the
//! account, which a `429`'s `Retry-After` pauses as a whole, and [`Budgeted`], the [`IvyApi`]
//! decorator that makes every call wait for it.
//!
//! The bucket is kept as one instant, the theoretical arrival time `tat` of the next request
//! (the "generic cell rate algorithm"): a request may go at `tat - tolerance`, and moves `tat`
//! on by one interval. A wait is a reservation, so callers go in the order they asked. A pause
//! moves `tat` past its end; a caller already asleep when a pause begins reserves again when it
//! wakes, so nobody slips through during the pause.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::accounts::metrics::AccountCounters;
use crate::ivy::{
    Capabilities, CreatedSubscription, Dialect, IdempotencyKey, IvyApi, IvyError,
    RemoteSubscription, SharedIvyApi, SubscriptionPatch, SubscriptionRequest,
};

/// Requests per second of an account that sets none (the `--ivy-rate` default). Ivy documents
/// no limit; this keeps a runaway loop polite without being what limits a large apply, and a
/// `429` pauses the account whatever the rate.
pub const DEFAULT_RATE: f64 = 50.0;
/// Burst of an account that sets none (the `--ivy-burst` default).
pub const DEFAULT_BURST: u32 = 100;
/// The longest wait a call sleeps through. A longer one (a pause, a deep queue) is answered at
/// once with [`IvyError::RateLimited`] and the remaining time, so that a reconcile worker is
/// not held while the account waits: the reconcile is requeued for when the budget allows.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(1);
/// How long a `429` without `Retry-After` pauses the account.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause a `Retry-After` can impose.
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// Rate and burst of one account.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetConfig {
    /// Requests per second, above zero.
    pub rate: f64,
    /// Requests that may go at once after a quiet period, at least one.
    pub burst: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            rate: DEFAULT_RATE,
            burst: DEFAULT_BURST,
        }
    }
}

impl BudgetConfig {
    /// This config with the account's own `rate` / `burst` where it sets them.
    pub fn overridden_by(self, rate: Option<f64>, burst: Option<u32>) -> Self {
        Self {
            rate: rate.unwrap_or(self.rate),
            burst: burst.unwrap_or(self.burst),
        }
    }

    /// Time between two requests at the steady rate. A rate the schema should have refused
    /// (zero, negative, not finite) falls back to the default rate rather than to no limit.
    fn interval(self) -> Duration {
        let rate = if self.rate.is_finite() && self.rate > 0.0 {
            self.rate
        } else {
            DEFAULT_RATE
        };
        Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::from_secs(3600))
    }

    /// How far ahead of the steady rate a burst may run.
    fn tolerance(self) -> Duration {
        self.interval().saturating_mul(self.burst.max(1) - 1)
    }
}

/// What the budget says to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reservation {
    /// Go now.
    Now,
    /// Go at `at`, unless a pause began meanwhile (`epoch` moved).
    At { at: Instant, epoch: u64 },
    /// Too long to wait inside a call: come back after this long.
    Deferred(Duration),
}

#[derive(Debug)]
struct State {
    tat: Instant,
    interval: Duration,
    tolerance: Duration,
    /// Counts pauses, so that a sleeping caller sees that one began.
    epoch: u64,
}

/// The token bucket of one account.
#[derive(Debug)]
pub struct Budget {
    state: Mutex<State>,
    max_wait: Duration,
}

/// How a caller got through [`Budget::acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// A token was there.
    AtOnce,
    /// The caller slept for its token.
    AfterWaiting,
}

impl Budget {
    /// A full bucket: `burst` requests may go at once.
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            state: Mutex::new(State {
                tat: Instant::now(),
                interval: config.interval(),
                tolerance: config.tolerance(),
                epoch: 0,
            }),
            max_wait: DEFAULT_MAX_WAIT,
        }
    }

    /// The same budget, sleeping through waits up to `max_wait` only.
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Applies a changed rate or burst to the requests from now on.
    pub fn reconfigure(&self, config: BudgetConfig) {
        let mut state = self.lock();
        state.interval = config.interval();
        state.tolerance = config.tolerance();
    }

    /// Waits for a token. `Err(wait)` when the token is further away than the longest wait a
    /// call sleeps through (see [`DEFAULT_MAX_WAIT`]): nothing was reserved, come back then.
    pub async fn acquire(&self) -> Result<Admitted, Duration> {
        let mut admitted = Admitted::AtOnce;
        loop {
            match self.reserve(Instant::now()) {
                Reservation::Now => return Ok(admitted),
                Reservation::Deferred(wait) => return Err(wait),
                Reservation::At { at, epoch } => {
                    admitted = Admitted::AfterWaiting;
                    tokio::time::sleep_until(at).await;
                    if self.lock().epoch == epoch {
                        return Ok(admitted);
                    }
                }
            }
        }
    }

    /// Stops every request of the account for `duration` (capped at [`MAX_PAUSE`]). After the
    /// pause one request may go at once and the rest follow at the steady rate, without a burst.
    pub fn pause(&self, duration: Duration) {
        let now = Instant::now();
        let until = now + duration.min(MAX_PAUSE);
        let mut state = self.lock();
        state.tat = state.tat.max(until + state.tolerance);
        state.epoch += 1;
    }

    /// How long a request arriving now would wait (zero when a token is there).
    pub fn wait_at(&self, now: Instant) -> Duration {
        let state = self.lock();
        state
            .tat
            .max(now)
            .saturating_duration_since(now)
            .saturating_sub(state.tolerance)
    }

    fn reserve(&self, now: Instant) -> Reservation {
        let mut state = self.lock();
        let tat = state.tat.max(now);
        let wait = tat
            .saturating_duration_since(now)
            .saturating_sub(state.tolerance);
        if wait > self.max_wait {
            return Reservation::Deferred(wait);
        }
        state.tat = tat + state.interval;
        if wait.is_zero() {
            Reservation::Now
        } else {
            Reservation::At {
                at: now + wait,
                epoch: state.epoch,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An [`IvyApi`] that spends its account's budget: it waits for a token before each call,
/// counts calls and throttled waits, and pauses the whole account when Ivy answers `429`.
pub struct Budgeted {
    inner: SharedIvyApi,
    budget: Arc<Budget>,
    counters: AccountCounters,
}

impl Budgeted {
    pub fn new(inner: SharedIvyApi, budget: Arc<Budget>, counters: AccountCounters) -> Self {
        Self {
            inner,
            budget,
            counters,
        }
    }

    async fn spend<T, F>(&self, call: F) -> Result<T, IvyError>
    where
        F: Future<Output = Result<T, IvyError>> + Send,
    {
        match self.budget.acquire().await {
            Ok(Admitted::AtOnce) => {}
            Ok(Admitted::AfterWaiting) => self.counters.throttled_wait(),
            Err(wait) => {
                self.counters.throttled_wait();
                return Err(IvyError::RateLimited {
                    retry_after: Some(wait),
                });
            }
        }
        self.counters.call();
        let result = call.await;
        if let Err(IvyError::RateLimited { retry_after }) = &result {
            self.counters.rate_limited();
            self.budget.pause(retry_after.unwrap_or(DEFAULT_PAUSE));
        }
        result
    }
}

#[async_trait]
impl IvyApi for Budgeted {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn create(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        self.spend(self.inner.create(request, key)).await
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        self.spend(self.inner.get(id)).await
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        self.spend(self.inner.update(id, patch, key)).await
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        self.spend(self.inner.delete(id, key)).await
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        self.spend(self.inner.list()).await
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        self.spend(self.inner.trigger_test(id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::metrics::AccountMetrics;
    use crate::accounts::test_support::ScriptedIvy;

    const SECOND: Duration = Duration::from_secs(1);

    fn budget(rate: f64, burst: u32) -> Budget {
        Budget::new(BudgetConfig { rate, burst })
    }

    /// When each of `n` callers, all asking at once, got its token (offsets from the start).
    async fn admission_times(budget: Arc<Budget>, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    budget.acquire().await.unwrap();
                    Instant::now() - start
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_lets_the_burst_through_at_once() {
        let budget = budget(2.0, 3);
        for _ in 0..3 {
            assert_eq!(budget.acquire().await, Ok(Admitted::AtOnce));
        }
        assert_eq!(budget.wait_at(Instant::now()), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_burst_callers_go_at_the_steady_rate_in_order() {
        let budget = Arc::new(budget(2.0, 2).with_max_wait(10 * SECOND));
        let times = admission_times(budget, 5).await;
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 500, 1000, 1500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_period_refills_the_bucket_up_to_the_burst_only() {
        let budget = budget(1.0, 2);
        budget.acquire().await.unwrap();
        budget.acquire().await.unwrap();
        tokio::time::advance(60 * SECOND).await;
        assert_eq!(budget.acquire().await, Ok(Admitted::AtOnce));
        assert_eq!(budget.acquire().await, Ok(Admitted::AtOnce));
        assert_eq!(budget.wait_at(Instant::now()), SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_the_limit_is_deferred_without_spending_a_token() {
        let budget = budget(0.1, 1);
        budget.acquire().await.unwrap();
        assert_eq!(budget.acquire().await, Err(10 * SECOND));
        // Nothing was reserved by the refusal: the next token is still 10 s away, not 20 s.
        assert_eq!(budget.wait_at(Instant::now()), 10 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_defers_every_caller_until_it_ends() {
        let budget = budget(10.0, 20);
        budget.pause(30 * SECOND);
        assert_eq!(budget.acquire().await, Err(30 * SECOND));
        tokio::time::advance(20 * SECOND).await;
        assert_eq!(budget.acquire().await, Err(10 * SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_pause_one_call_goes_and_the_rest_follow_at_the_rate() {
        let budget = Arc::new(budget(2.0, 10).with_max_wait(10 * SECOND));
        budget.pause(3 * SECOND);
        let times = admission_times(budget, 3).await;
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [3000, 3500, 4000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_already_waiting_when_a_pause_begins_waits_for_the_pause_too() {
        let budget = Arc::new(budget(1.0, 1).with_max_wait(10 * SECOND));
        budget.acquire().await.unwrap();
        let start = Instant::now();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget.acquire().await.unwrap();
                Instant::now() - start
            })
        };
        // The waiter has reserved the token due at 1 s; a 429 now pauses the account for 5 s.
        tokio::time::sleep(Duration::from_millis(100)).await;
        budget.pause(5 * SECOND);
        let waited = waiter.await.unwrap();
        assert!(waited >= Duration::from_millis(5100), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_pause_never_shortens_a_longer_one() {
        let budget = budget(10.0, 1);
        budget.pause(30 * SECOND);
        budget.pause(SECOND);
        assert_eq!(budget.wait_at(Instant::now()), 30 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_of_days_pauses_for_the_cap_only() {
        let budget = budget(10.0, 1);
        budget.pause(Duration::from_secs(86_400 * 3));
        assert_eq!(budget.wait_at(Instant::now()), MAX_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn reconfiguring_changes_the_rate_of_later_requests() {
        let budget = Arc::new(budget(1.0, 1).with_max_wait(10 * SECOND));
        budget.acquire().await.unwrap();
        budget.reconfigure(BudgetConfig {
            rate: 4.0,
            burst: 1,
        });
        tokio::time::advance(SECOND).await;
        let times = admission_times(budget, 3).await;
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 250, 500]);
    }

    #[test]
    fn a_rate_the_schema_refuses_falls_back_to_the_default_not_to_no_limit() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let config = BudgetConfig { rate, burst: 1 };
            assert_eq!(config.interval(), Duration::from_millis(20), "{rate}");
        }
    }

    #[test]
    fn account_fields_override_the_defaults() {
        let config = BudgetConfig::default().overridden_by(Some(0.5), None);
        assert_eq!(
            config,
            BudgetConfig {
                rate: 0.5,
                burst: DEFAULT_BURST
            }
        );
    }

    /// A client of account `shop/main`; every client made with one `metrics` counts into the
    /// same series, as the clients of one account do.
    fn budgeted_with(
        ivy: Arc<ScriptedIvy>,
        budget: Arc<Budget>,
        metrics: &AccountMetrics,
    ) -> (Budgeted, AccountCounters) {
        let counters = metrics.counters("shop/main");
        (Budgeted::new(ivy, budget, counters.clone()), counters)
    }

    fn budgeted(ivy: Arc<ScriptedIvy>, budget: Arc<Budget>) -> (Budgeted, AccountCounters) {
        budgeted_with(ivy, budget, &AccountMetrics::unregistered())
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_pauses_every_caller_of_the_account_for_its_retry_after() {
        let ivy = Arc::new(ScriptedIvy::default());
        ivy.fail_next(IvyError::RateLimited {
            retry_after: Some(7 * SECOND),
        });
        let budget = Arc::new(budget(10.0, 20));
        let metrics = AccountMetrics::unregistered();
        let (first, counters) = budgeted_with(ivy.clone(), budget.clone(), &metrics);
        let (second, _) = budgeted_with(ivy.clone(), budget, &metrics);
        assert!(matches!(
            first.get("a").await,
            Err(IvyError::RateLimited { .. })
        ));
        // Another resource of the same account is held back without reaching Ivy.
        match second.get("b").await {
            Err(IvyError::RateLimited { retry_after }) => {
                assert_eq!(retry_after, Some(7 * SECOND));
            }
            other => panic!("expected a deferral, got {other:?}"),
        }
        assert_eq!(ivy.calls(), 1);
        assert_eq!(counters.rate_limited_total(), 1);
        assert_eq!(counters.throttled_waits_total(), 1);
        tokio::time::advance(7 * SECOND).await;
        assert!(second.get("b").await.is_ok());
        assert_eq!(ivy.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_pauses_for_the_default() {
        let ivy = Arc::new(ScriptedIvy::default());
        ivy.fail_next(IvyError::RateLimited { retry_after: None });
        let budget = Arc::new(budget(10.0, 20));
        let (client, _) = budgeted(ivy, budget.clone());
        let _ = client.list().await;
        assert_eq!(budget.wait_at(Instant::now()), DEFAULT_PAUSE);
    }

    #[tokio::test(start_paused = true)]
    async fn another_accounts_budget_is_not_paused() {
        let ivy = Arc::new(ScriptedIvy::default());
        ivy.fail_next(IvyError::RateLimited {
            retry_after: Some(60 * SECOND),
        });
        let (storm, _) = budgeted(ivy.clone(), Arc::new(budget(10.0, 20)));
        let (calm, _) = budgeted(ivy.clone(), Arc::new(budget(10.0, 20)));
        let _ = storm.get("a").await;
        let started = Instant::now();
        assert!(calm.get("b").await.is_ok());
        assert_eq!(Instant::now(), started);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_and_throttled_waits_are_counted() {
        let ivy = Arc::new(ScriptedIvy::default());
        let budget = Arc::new(budget(1.0, 1).with_max_wait(5 * SECOND));
        let (client, counters) = budgeted(ivy.clone(), budget);
        client.get("a").await.unwrap();
        client.get("b").await.unwrap();
        assert_eq!(counters.calls_total(), 2);
        assert_eq!(counters.throttled_waits_total(), 1);
        assert_eq!(counters.rate_limited_total(), 0);
        assert_eq!(ivy.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_pass_through_without_a_pause() {
        let ivy = Arc::new(ScriptedIvy::default());
        ivy.fail_next(IvyError::Auth { status: 401 });
        let budget = Arc::new(budget(10.0, 20));
        let (client, counters) = budgeted(ivy, budget.clone());
        assert!(matches!(client.get("a").await, Err(IvyError::Auth { .. })));
        assert_eq!(budget.wait_at(Instant::now()), Duration::ZERO);
        assert_eq!(counters.rate_limited_total(), 0);
    }
}
