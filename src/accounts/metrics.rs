//! Metrics per Ivy account: calls sent, calls the budget held back, and `429`s, labelled with
//! the account (`namespace/name`, `cluster/name`, or `default`), a label bounded by the number
//! of accounts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

/// The account metrics, registered once in `main`.
#[derive(Debug, Default)]
pub struct AccountMetrics {
    calls: Family<AccountLabels, Counter>,
    throttled_waits: Family<AccountLabels, Counter>,
    rate_limited: Family<AccountLabels, Counter>,
}

impl AccountMetrics {
    /// Creates the metrics and registers them in `registry` under the `ivywh` prefix:
    /// `ivywh_account_ivy_calls_total`, `ivywh_account_throttled_waits_total`,
    /// `ivywh_account_rate_limited_total`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let registry = registry.sub_registry_with_prefix("ivywh");
        registry.register(
            "account_ivy_calls",
            "Calls sent to Ivy, by account",
            metrics.calls.clone(),
        );
        registry.register(
            "account_throttled_waits",
            "Calls the account's request budget delayed or deferred, by account",
            metrics.throttled_waits.clone(),
        );
        registry.register(
            "account_rate_limited",
            "429 answers from Ivy, each pausing the account's budget, by account",
            metrics.rate_limited.clone(),
        );
        metrics
    }

    /// Metrics that are not exported anywhere (tests).
    pub fn unregistered() -> Self {
        Self::default()
    }

    /// The counters of one account, created at zero the first time.
    pub fn counters(&self, account: &str) -> AccountCounters {
        let labels = AccountLabels {
            account: account.to_owned(),
        };
        AccountCounters {
            calls: self.calls.get_or_create(&labels).clone(),
            throttled_waits: self.throttled_waits.get_or_create(&labels).clone(),
            rate_limited: self.rate_limited.get_or_create(&labels).clone(),
        }
    }
}

/// The three counters of one account; clones count into the same series.
#[derive(Clone, Debug)]
pub struct AccountCounters {
    calls: Counter,
    throttled_waits: Counter,
    rate_limited: Counter,
}

impl AccountCounters {
    pub(crate) fn call(&self) {
        self.calls.inc();
    }

    pub(crate) fn throttled_wait(&self) {
        self.throttled_waits.inc();
    }

    pub(crate) fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn calls_total(&self) -> u64 {
        self.calls.get()
    }

    pub fn throttled_waits_total(&self) -> u64 {
        self.throttled_waits.get()
    }

    pub fn rate_limited_total(&self) -> u64 {
        self.rate_limited.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_account_has_its_own_series_under_the_documented_names() {
        let mut registry = Registry::default();
        let metrics = AccountMetrics::register(&mut registry);
        metrics.counters("shop/main").call();
        metrics.counters("shop/main").call();
        metrics.counters("cluster/platform").rate_limited();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"ivywh_account_ivy_calls_total{account="shop/main"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ivywh_account_rate_limited_total{account="cluster/platform"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ivywh_account_throttled_waits_total{account="shop/main"} 0"#),
            "{text}"
        );
    }
}
