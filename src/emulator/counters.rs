//! What the emulator counts about the requests it serves, for tests and the benchmark:
//! requests per method, route and status; dialect requests per dialect, operation and status;
//! and a bounded log of mutating requests with their arrival and handling times.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use uuid::Uuid;

use super::model::format_id;
use crate::ivy::Dialect;

/// What a dialect request asks for, whatever the dialect calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Create,
    Get,
    Update,
    Delete,
    /// A list request for the first page (no offset, skip or cursor).
    List,
    /// A list request for a following page.
    ListPage,
    /// A test event, a ping or a re-send.
    Trigger,
}

impl Operation {
    pub const ALL: [Operation; 7] = [
        Operation::Create,
        Operation::Get,
        Operation::Update,
        Operation::Delete,
        Operation::List,
        Operation::ListPage,
        Operation::Trigger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Get => "get",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::ListPage => "list-page",
            Operation::Trigger => "trigger",
        }
    }

    /// Whether the operation changes subscriptions (and so goes into the mutation log).
    pub fn is_mutation(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Delete
        )
    }

    /// The operation a dialect route serves, from its method and route template: `rest`
    /// names it by method, `internal` and `service` by the last path segment. A list is
    /// `List` here; its handler marks following pages as `ListPage`.
    pub(crate) fn of_route(method: &str, route: &str) -> Option<Self> {
        let verb = route.rsplit('/').next()?;
        let operation = match (method, verb) {
            ("POST", "webhook" | "create") => Operation::Create,
            ("GET", "webhook") | ("POST", "list") => Operation::List,
            ("GET", "{id}") | ("POST", "get") => Operation::Get,
            ("PUT", "{id}") | ("POST", "update") => Operation::Update,
            ("DELETE", "{id}") | ("POST", "delete") => Operation::Delete,
            ("POST", "test" | "trigger-test" | "ping" | "trigger") => Operation::Trigger,
            _ => return None,
        };
        Some(operation)
    }
}

/// The subscription a successful mutation changed, as its handler reports it (a response
/// extension) to the pipeline, which logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Touched {
    pub uuid: Uuid,
    /// Its URL after the change (for a delete: the URL it had).
    pub url: String,
}

/// How often one route answered one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    pub method: String,
    /// The route template (`/webhook/{id}`), or `<unmatched>`.
    pub route: String,
    pub status: u16,
    pub count: u64,
}

/// How often one dialect answered one operation with one status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationCount {
    pub dialect: &'static str,
    pub operation: Operation,
    pub status: u16,
    pub count: u64,
}

/// One mutating dialect request (create, update, delete), as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mutation {
    /// Consecutive from 1 (since the last reset): a gap at the front means older entries
    /// were dropped to keep the log bounded.
    pub seq: u64,
    pub dialect: &'static str,
    pub operation: Operation,
    /// The status the client got.
    pub status: u16,
    /// The subscription's id in the request's dialect format, when the request changed one
    /// (or replayed the answer of one that did).
    pub subscription_id: Option<String>,
    /// Its UUID (= the `rest` id).
    pub uuid: Option<String>,
    /// Its URL after the change (for a delete: the URL it had).
    pub url: Option<String>,
    /// When the request reached the emulator's dialect pipeline, Unix time in nanoseconds.
    pub received_at_unix_nanos: u64,
    /// Time the emulator spent on it until the answer was ready, injected latency included.
    pub handling_micros: u64,
    /// The answer was an `Idempotency-Key` replay.
    pub replayed: bool,
}

/// One dialect request as the pipeline saw it, for [`Counters::record`].
#[derive(Clone, Debug)]
pub(crate) struct Served {
    pub dialect: Dialect,
    pub operation: Operation,
    pub status: u16,
    pub touched: Option<Touched>,
    pub received_at_unix_nanos: u64,
    pub handling_micros: u64,
    pub replayed: bool,
}

/// All counts and the mutation log.
#[derive(Debug)]
pub(crate) struct Counters {
    by_route: BTreeMap<(String, String, u16), u64>,
    by_operation: BTreeMap<(&'static str, Operation, u16), u64>,
    mutations: VecDeque<Mutation>,
    capacity: usize,
    next_seq: u64,
}

impl Counters {
    pub fn new(mutation_log_capacity: usize) -> Self {
        Self {
            by_route: BTreeMap::new(),
            by_operation: BTreeMap::new(),
            mutations: VecDeque::new(),
            capacity: mutation_log_capacity,
            next_seq: 0,
        }
    }

    /// Counts any request (dialect, admin or unmatched) by method, route and status.
    pub fn count_route(&mut self, method: &str, route: &str, status: u16) {
        *self
            .by_route
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
    }

    /// Counts a dialect request by operation and logs it when it is a mutation.
    pub fn record(&mut self, served: Served) {
        let dialect = served.dialect.as_str();
        *self
            .by_operation
            .entry((dialect, served.operation, served.status))
            .or_default() += 1;
        if !served.operation.is_mutation() || self.capacity == 0 {
            return;
        }
        self.next_seq += 1;
        let touched = served.touched;
        if self.mutations.len() >= self.capacity {
            self.mutations.pop_front();
        }
        self.mutations.push_back(Mutation {
            seq: self.next_seq,
            dialect,
            operation: served.operation,
            status: served.status,
            subscription_id: touched.as_ref().map(|t| format_id(served.dialect, t.uuid)),
            uuid: touched.as_ref().map(|t| t.uuid.hyphenated().to_string()),
            url: touched.map(|t| t.url),
            received_at_unix_nanos: served.received_at_unix_nanos,
            handling_micros: served.handling_micros,
            replayed: served.replayed,
        });
    }

    pub fn route_counts(&self) -> Vec<RequestCount> {
        self.by_route
            .iter()
            .map(|((method, route, status), count)| RequestCount {
                method: method.clone(),
                route: route.clone(),
                status: *status,
                count: *count,
            })
            .collect()
    }

    pub fn operation_counts(&self) -> Vec<OperationCount> {
        self.by_operation
            .iter()
            .map(|((dialect, operation, status), count)| OperationCount {
                dialect,
                operation: *operation,
                status: *status,
                count: *count,
            })
            .collect()
    }

    /// Forgets both kinds of counts (not the mutation log).
    pub fn reset_counts(&mut self) {
        self.by_route.clear();
        self.by_operation.clear();
    }

    /// The logged mutations with `seq` greater than `after`, oldest first.
    pub fn mutations_after(&self, after: u64) -> Vec<Mutation> {
        let start = self.mutations.partition_point(|m| m.seq <= after);
        self.mutations.range(start..).cloned().collect()
    }

    /// Empties the log; sequence numbers go on from where they were.
    pub fn clear_mutations(&mut self) {
        self.mutations.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(operation: Operation, status: u16) -> Served {
        Served {
            dialect: Dialect::Internal,
            operation,
            status,
            touched: Some(Touched {
                uuid: Uuid::nil(),
                url: "https://a.example/".into(),
            }),
            received_at_unix_nanos: 7,
            handling_micros: 3,
            replayed: false,
        }
    }

    #[test]
    fn every_dialect_route_has_an_operation() {
        let routes = [
            ("POST", "/webhook", Operation::Create),
            ("GET", "/webhook", Operation::List),
            ("GET", "/webhook/{id}", Operation::Get),
            ("PUT", "/webhook/{id}", Operation::Update),
            ("DELETE", "/webhook/{id}", Operation::Delete),
            ("POST", "/webhook/{id}/test", Operation::Trigger),
            (
                "POST",
                "/api/service/internal/webhook-subscription/create",
                Operation::Create,
            ),
            (
                "POST",
                "/api/service/internal/webhook-subscription/update",
                Operation::Update,
            ),
            (
                "POST",
                "/api/service/internal/webhook-subscription/get",
                Operation::Get,
            ),
            (
                "POST",
                "/api/service/internal/webhook-subscription/list",
                Operation::List,
            ),
            (
                "POST",
                "/api/service/internal/webhook-subscription/delete",
                Operation::Delete,
            ),
            (
                "POST",
                "/api/service/internal/webhook-subscription/trigger-test",
                Operation::Trigger,
            ),
            (
                "POST",
                "/api/service/webhook-subscription/ping",
                Operation::Trigger,
            ),
            ("POST", "/api/service/webhook/trigger", Operation::Trigger),
        ];
        for (method, route, operation) in routes {
            assert_eq!(
                Operation::of_route(method, route),
                Some(operation),
                "{method} {route}"
            );
        }
        assert_eq!(Operation::of_route("PATCH", "/webhook/{id}"), None);
    }

    #[test]
    fn operations_are_counted_per_dialect_and_status_and_reset() {
        let mut counters = Counters::new(10);
        counters.record(served(Operation::Get, 200));
        counters.record(served(Operation::Get, 200));
        counters.record(served(Operation::Get, 404));
        let counts = counters.operation_counts();
        assert_eq!(counts.len(), 2);
        assert_eq!(
            (counts[0].dialect, counts[0].status, counts[0].count),
            ("internal", 200, 2)
        );
        counters.count_route("GET", "/x", 200);
        counters.reset_counts();
        assert!(counters.operation_counts().is_empty());
        assert!(counters.route_counts().is_empty());
    }

    #[test]
    fn only_mutations_are_logged_with_ids_in_the_dialects_format() {
        let mut counters = Counters::new(10);
        counters.record(served(Operation::List, 200));
        counters.record(served(Operation::Update, 200));
        let log = counters.mutations_after(0);
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].seq, 1);
        assert_eq!(
            log[0].subscription_id.as_deref(),
            Some("wsub_00000000000000000000000000000000")
        );
        assert_eq!(
            (log[0].received_at_unix_nanos, log[0].handling_micros),
            (7, 3)
        );
    }

    #[test]
    fn the_log_keeps_the_newest_entries_and_reads_from_a_sequence_number() {
        let mut counters = Counters::new(3);
        for _ in 0..5 {
            counters.record(served(Operation::Create, 201));
        }
        let seqs: Vec<u64> = counters.mutations_after(0).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(counters.mutations_after(4).len(), 1);
        counters.clear_mutations();
        counters.record(served(Operation::Delete, 200));
        assert_eq!(counters.mutations_after(0)[0].seq, 6);
    }
}
