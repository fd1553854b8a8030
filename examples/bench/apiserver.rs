//! The apiserver's own count of the requests it served (`apiserver_request_total` on its
//! /metrics), read before and after a phase: what every client together wrote meanwhile.

use std::collections::BTreeMap;

use anyhow::Context as _;
use kube::Client;

/// Verbs that change something.
const WRITE_VERBS: [&str; 6] = [
    "POST",
    "PUT",
    "PATCH",
    "APPLY",
    "DELETE",
    "DELETECOLLECTION",
];

/// Resources the operator writes: its own, the Secrets and the Events it publishes.
const OPERATOR_RESOURCES: [&str; 4] = [
    "webhooksubscriptions",
    "webhooksubscriptions/status",
    "secrets",
    "events",
];

/// Request counts by (resource[/subresource], verb, code).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    counts: BTreeMap<(String, String, String), f64>,
}

/// Writes over a stretch of the run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Writes {
    /// All write requests, any client, any answer.
    pub total: u64,
    /// Writes to the operator's resources (WebhookSubscriptions and their status, Secrets,
    /// Events), any client.
    pub operator_resources: u64,
    /// By `resource verb`, e.g. `secrets APPLY`.
    pub by_resource_verb: BTreeMap<String, u64>,
    /// Reads (GET, LIST; watches not counted) by `resource verb`, any client.
    pub reads_by_resource_verb: BTreeMap<String, u64>,
    /// Answers 429 (too many requests) to any request, reads included.
    pub throttled: u64,
}

/// Reads the apiserver's request counters.
pub async fn snapshot(client: &Client) -> anyhow::Result<Snapshot> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client
        .request_text(request)
        .await
        .context("cannot read the apiserver's /metrics")?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels = parse_labels(labels);
        let label = |name: &str| labels.get(name).cloned().unwrap_or_default();
        let resource = match label("subresource").as_str() {
            "" => label("resource"),
            sub => format!("{}/{sub}", label("resource")),
        };
        let value: f64 = value.trim().parse().unwrap_or(0.0);
        *counts
            .entry((resource, label("verb"), label("code")))
            .or_insert(0.0) += value;
    }
    Ok(Snapshot { counts })
}

impl Snapshot {
    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Writes {
        let mut writes = Writes::default();
        for ((resource, verb, code), after) in &self.counts {
            let key = (resource.clone(), verb.clone(), code.clone());
            let before = earlier.counts.get(&key).copied().unwrap_or(0.0);
            let delta = (after - before).max(0.0).round() as u64;
            if delta == 0 {
                continue;
            }
            if code == "429" {
                writes.throttled += delta;
            }
            if !WRITE_VERBS.contains(&verb.as_str()) {
                if verb == "GET" || verb == "LIST" {
                    *writes
                        .reads_by_resource_verb
                        .entry(format!("{resource} {verb}"))
                        .or_insert(0) += delta;
                }
                continue;
            }
            writes.total += delta;
            if OPERATOR_RESOURCES.contains(&resource.as_str()) {
                writes.operator_resources += delta;
            }
            *writes
                .by_resource_verb
                .entry(format!("{resource} {verb}"))
                .or_insert(0) += delta;
        }
        writes
    }
}

/// `a="x",b="y"` into a map (values here never contain quotes or commas).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    text.split("\",")
        .filter_map(|pair| {
            let (name, value) = pair.split_once("=\"")?;
            Some((name.to_owned(), value.trim_end_matches('"').to_owned()))
        })
        .collect()
}
