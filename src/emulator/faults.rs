//! Injected faults: what can go wrong on the dialect routes, when, and how often.
//!
//! A fault matches a request by dialect, method and route (all optional), fires with
//! probability `rate`, and at most `count` times. Latency faults add up; of the others only the
//! first that fires applies. `fail_after_commit` lets the handler run (and the idempotency
//! record be stored) and then answers 500 or drops the connection, so the client never sees
//! the answer of a change that did happen.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ivy::Dialect;

/// What a fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer `status` (default 500) without running the handler.
    Status,
    /// Answer 429, with `Retry-After: retry_after_secs` when given.
    RateLimit,
    /// Wait `latency_ms` before handling.
    Latency,
    /// Close the connection without a usable answer, without running the handler.
    DropConnection,
    /// Run the handler; replace a 2xx body with `body` (default: not JSON).
    MalformedBody,
    /// Run the handler (the change is committed), then answer 500 or drop (`then`).
    FailAfterCommit,
}

/// How a `fail_after_commit` fault answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterCommit {
    /// A 500 with the dialect's error body.
    #[default]
    Status,
    /// A dropped connection.
    Drop,
}

/// One fault, as posted to `POST /admin/faults` or passed to
/// [`EmulatorState::add_fault`](super::state::EmulatorState::add_fault).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// `status` faults: the HTTP status (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `rate_limit` faults: the `Retry-After` seconds (no header when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// `latency` faults: the delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// `malformed_body` faults: the body to send instead (default `<html>not json</html>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// `fail_after_commit` faults: 500 (default) or a dropped connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub then: Option<AfterCommit>,
    /// Probability in 0..=1 that a matching request is hit (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Hit at most this many requests, then the fault is removed (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Only requests to this dialect (`rest`, `internal`, `service`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "dialect_name"
    )]
    pub dialect: Option<Dialect>,
    /// Only this route: the route template (`/webhook/{id}`) or the exact path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only this method (`GET`, `POST`, …; case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl FaultSpec {
    fn of(kind: FaultKind) -> Self {
        Self {
            kind,
            status: None,
            retry_after_secs: None,
            latency_ms: None,
            body: None,
            then: None,
            rate: None,
            count: None,
            dialect: None,
            route: None,
            method: None,
        }
    }

    /// Answer `status` instead of handling.
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::of(FaultKind::Status)
        }
    }

    /// Answer 429, with `Retry-After` seconds when given.
    pub fn rate_limit(retry_after_secs: Option<u64>) -> Self {
        Self {
            retry_after_secs,
            ..Self::of(FaultKind::RateLimit)
        }
    }

    /// Delay the answer.
    pub fn latency(delay: Duration) -> Self {
        Self {
            latency_ms: Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
            ..Self::of(FaultKind::Latency)
        }
    }

    /// Drop the connection instead of handling.
    pub fn drop_connection() -> Self {
        Self::of(FaultKind::DropConnection)
    }

    /// Handle, then send a body that is not the documented JSON.
    pub fn malformed_body() -> Self {
        Self::of(FaultKind::MalformedBody)
    }

    /// Handle (commit), then fail as `then` says.
    pub fn fail_after_commit(then: AfterCommit) -> Self {
        Self {
            then: Some(then),
            ..Self::of(FaultKind::FailAfterCommit)
        }
    }

    /// Hit at most `n` requests.
    pub fn times(mut self, n: u64) -> Self {
        self.count = Some(n);
        self
    }

    /// Hit matching requests with probability `rate` (0..=1).
    pub fn with_rate(mut self, rate: f64) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Only requests to `dialect`.
    pub fn on_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = Some(dialect);
        self
    }

    /// Only requests to `route` (template or exact path).
    pub fn on_route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Only requests with `method`.
    pub fn on_method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Refuses specs that cannot mean anything.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(rate) = self.rate
            && !(0.0..=1.0).contains(&rate)
        {
            return Err("rate must be between 0 and 1".into());
        }
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err("status must be an HTTP status code".into());
        }
        if self.kind == FaultKind::Latency && self.latency_ms.is_none() {
            return Err("a latency fault needs latency_ms".into());
        }
        Ok(())
    }

    fn matches(&self, dialect: Dialect, method: &str, route: &str, path: &str) -> bool {
        self.dialect.is_none_or(|d| d == dialect)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .route
                .as_deref()
                .is_none_or(|r| r == route || r == path)
    }
}

/// An installed fault and how often it has fired.
#[derive(Clone, Debug, Serialize)]
pub struct Fault {
    pub id: u64,
    #[serde(flatten)]
    pub spec: FaultSpec,
    pub fired: u64,
}

/// What happens to one request before its handler runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Before {
    Status(u16),
    RateLimit(Option<u64>),
    Drop,
}

/// What happens to one request's answer after its handler ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum After {
    MalformedBody(String),
    FailAfterCommit(AfterCommit),
}

/// The faults chosen for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub latency: Duration,
    pub before: Option<Before>,
    pub after: Option<After>,
}

/// The installed faults.
#[derive(Debug, Default)]
pub struct Faults {
    faults: Vec<Fault>,
    next_id: u64,
}

impl Faults {
    pub fn add(&mut self, spec: FaultSpec) -> u64 {
        self.next_id += 1;
        self.faults.push(Fault {
            id: self.next_id,
            spec,
            fired: 0,
        });
        self.next_id
    }

    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.faults.len();
        self.faults.retain(|f| f.id != id);
        self.faults.len() != before
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Rolls the dice for one request and uses up the counts of the faults that fire.
    pub fn decide(&mut self, dialect: Dialect, method: &str, route: &str, path: &str) -> Decision {
        let mut decision = Decision::default();
        let mut rng = rand::rng();
        for fault in &mut self.faults {
            let spec = &fault.spec;
            if !spec.matches(dialect, method, route, path) {
                continue;
            }
            let terminal = spec.kind != FaultKind::Latency;
            if terminal && (decision.before.is_some() || decision.after.is_some()) {
                continue;
            }
            let rate = spec.rate.unwrap_or(1.0);
            if rate < 1.0 && rng.random::<f64>() >= rate {
                continue;
            }
            fault.fired += 1;
            match spec.kind {
                FaultKind::Latency => {
                    decision.latency += Duration::from_millis(spec.latency_ms.unwrap_or(0));
                }
                FaultKind::Status => {
                    decision.before = Some(Before::Status(spec.status.unwrap_or(500)))
                }
                FaultKind::RateLimit => {
                    decision.before = Some(Before::RateLimit(spec.retry_after_secs))
                }
                FaultKind::DropConnection => decision.before = Some(Before::Drop),
                FaultKind::MalformedBody => {
                    let body = spec
                        .body
                        .clone()
                        .unwrap_or_else(|| "<html>not json</html>".to_owned());
                    decision.after = Some(After::MalformedBody(body));
                }
                FaultKind::FailAfterCommit => {
                    decision.after = Some(After::FailAfterCommit(spec.then.unwrap_or_default()));
                }
            }
        }
        self.faults
            .retain(|f| f.spec.count.is_none_or(|limit| f.fired < limit));
        decision
    }
}

/// `Option<Dialect>` as its lowercase name.
mod dialect_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ivy::Dialect;

    pub fn serialize<S: Serializer>(value: &Option<Dialect>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(d.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dialect>, D::Error> {
        let name: Option<String> = Option::deserialize(d)?;
        name.map(|n| n.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(faults: &mut Faults) -> Decision {
        faults.decide(Dialect::Rest, "POST", "/webhook", "/webhook")
    }

    #[test]
    fn a_counted_fault_fires_that_many_times_then_goes_away() {
        let mut faults = Faults::default();
        faults.add(FaultSpec::status(503).times(2));
        assert_eq!(decide(&mut faults).before, Some(Before::Status(503)));
        assert_eq!(decide(&mut faults).before, Some(Before::Status(503)));
        assert_eq!(decide(&mut faults), Decision::default());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn filters_restrict_which_requests_are_hit() {
        let mut faults = Faults::default();
        faults.add(FaultSpec::drop_connection().on_dialect(Dialect::Service));
        faults.add(
            FaultSpec::rate_limit(Some(3))
                .on_route("/webhook/{id}")
                .on_method("get"),
        );
        assert_eq!(decide(&mut faults), Decision::default());
        let get = faults.decide(Dialect::Rest, "GET", "/webhook/{id}", "/webhook/abc");
        assert_eq!(get.before, Some(Before::RateLimit(Some(3))));
        let svc = faults.decide(Dialect::Service, "POST", "/x", "/x");
        assert_eq!(svc.before, Some(Before::Drop));
    }

    #[test]
    fn latency_adds_up_and_only_the_first_terminal_fault_applies() {
        let mut faults = Faults::default();
        faults.add(FaultSpec::latency(Duration::from_millis(10)));
        faults.add(FaultSpec::fail_after_commit(AfterCommit::Drop).times(1));
        faults.add(FaultSpec::latency(Duration::from_millis(5)));
        faults.add(FaultSpec::status(500).times(1));
        let first = decide(&mut faults);
        assert_eq!(first.latency, Duration::from_millis(15));
        assert_eq!(first.after, Some(After::FailAfterCommit(AfterCommit::Drop)));
        assert_eq!(first.before, None);
        // The status fault was not used up by the first request.
        assert_eq!(decide(&mut faults).before, Some(Before::Status(500)));
    }

    #[test]
    fn a_zero_rate_never_fires() {
        let mut faults = Faults::default();
        faults.add(FaultSpec::status(500).with_rate(0.0));
        for _ in 0..50 {
            assert_eq!(decide(&mut faults).before, None);
        }
    }

    #[test]
    fn specs_read_from_json_with_defaults() {
        let spec: FaultSpec = serde_json::from_str(
            r#"{"kind":"fail_after_commit","then":"drop","dialect":"internal","count":1}"#,
        )
        .unwrap();
        assert_eq!(spec.dialect, Some(Dialect::Internal));
        assert_eq!(spec.then, Some(AfterCommit::Drop));
        assert!(
            serde_json::from_str::<FaultSpec>(r#"{"kind":"status","dialect":"soap"}"#).is_err()
        );
        assert!(FaultSpec::status(500).with_rate(2.0).validate().is_err());
    }
}
