//! The emulator's admin API as the benchmark reads it: operation counts (Ivy calls) and the
//! mutation log (when each create, update and delete arrived, and how long the emulator took).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

/// A client of `/admin/` on one emulator.
pub struct Admin {
    base_url: String,
    http: reqwest::Client,
}

/// One row of `GET /admin/operations`.
#[derive(Debug, Deserialize)]
struct OperationCount {
    operation: String,
    status: u16,
    count: u64,
}

/// One entry of `GET /admin/mutations`.
#[derive(Debug, Clone, Deserialize)]
pub struct Mutation {
    pub seq: u64,
    pub operation: String,
    pub status: u16,
    pub subscription_id: Option<String>,
    pub received_at_unix_nanos: u128,
    pub handling_micros: u64,
}

/// Ivy calls counted over a stretch of the run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Calls {
    pub total: u64,
    /// By operation (create, get, update, delete, list, list-page, trigger), any status.
    pub by_operation: BTreeMap<String, u64>,
    /// Answers other than 2xx, by status code.
    pub failed_by_status: BTreeMap<u16, u64>,
    /// Successful answers by operation.
    pub succeeded_by_operation: BTreeMap<String, u64>,
}

impl Calls {
    pub fn succeeded(&self, operation: &str) -> u64 {
        self.succeeded_by_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }

    pub fn failed(&self) -> u64 {
        self.failed_by_status.values().sum()
    }

    /// Calls per successful `operation` (None when there was none).
    pub fn per(&self, operation: &str) -> Option<f64> {
        let done = self.succeeded(operation);
        (done > 0).then(|| self.total as f64 / done as f64)
    }
}

impl Admin {
    pub fn new(base_url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            base_url: base_url.to_owned(),
            http,
        })
    }

    /// `http://127.0.0.1:PORT`, where the dialects are served too.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/{path}", self.base_url)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .with_context(|| format!("GET /admin/{path}"))?;
        if !response.status().is_success() {
            bail!("GET /admin/{path} answered {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Sets the operation counts back to zero (the subscriptions and the mutation log stay).
    pub async fn reset_counts(&self) -> anyhow::Result<()> {
        let response = self.http.delete(self.url("requests")).send().await?;
        if !response.status().is_success() {
            bail!("DELETE /admin/requests answered {}", response.status());
        }
        Ok(())
    }

    /// Ivy calls since the last reset.
    pub async fn calls(&self) -> anyhow::Result<Calls> {
        let rows: Vec<OperationCount> = self.get("operations").await?;
        let mut calls = Calls::default();
        for row in rows {
            calls.total += row.count;
            *calls.by_operation.entry(row.operation.clone()).or_insert(0) += row.count;
            if (200..300).contains(&row.status) {
                *calls
                    .succeeded_by_operation
                    .entry(row.operation)
                    .or_insert(0) += row.count;
            } else {
                *calls.failed_by_status.entry(row.status).or_insert(0) += row.count;
            }
        }
        Ok(calls)
    }

    /// Mutation log entries with `seq` greater than `after`.
    pub async fn mutations_after(&self, after: u64) -> anyhow::Result<Vec<Mutation>> {
        self.get(&format!("mutations?after={after}")).await
    }

    /// The last `seq` in the log (0 when empty).
    pub async fn last_seq(&self) -> anyhow::Result<u64> {
        let mut last = 0;
        loop {
            let page = self.mutations_after(last).await?;
            match page.last() {
                Some(entry) => last = entry.seq,
                None => return Ok(last),
            }
        }
    }

    /// How many subscriptions the emulator holds.
    pub async fn subscription_count(&self) -> anyhow::Result<usize> {
        let all: Vec<serde_json::Value> = self.get("subscriptions").await?;
        Ok(all.len())
    }
}
