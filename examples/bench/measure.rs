//! The phases with the operator running: start-up, N created at once until all are Ready, the
//! idle window, spec changes one after another, and deleting everything. Each records its
//! figures and correctness checks.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams};

use ivy_webhook_operator::crd::WebhookSubscription;

use crate::cpu::CpuWatch;
use crate::emulator::{Admin, Mutation};
use crate::procs::{self, Operator, Process};
use crate::report::{Figures, percentile, round};
use crate::tracker::Tracker;
use crate::{OPERATOR_NAMESPACE, Settings, apiserver, phase, secs_since, workload};

/// A resource that exists before the operator starts, so that start-up ends in a reconcile.
const PROBE: &str = "probe";

/// Runs every phase with the operator, which is stopped before this returns.
pub async fn run(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    emulator: &Process,
    logs: &Path,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let tracker = Tracker::start(client, OPERATOR_NAMESPACE).await?;
    let mut operator = start_up(settings, client, ivy, &tracker, logs, figures).await?;
    let result = with_operator(
        settings,
        client,
        ivy,
        emulator,
        &tracker,
        &mut operator,
        figures,
    )
    .await;
    figures.operator.exit_code = operator.process.stop().await;
    figures.operator.log_lines_by_level = procs::log_levels(&operator.process.log);
    let errors = figures
        .operator
        .log_lines_by_level
        .get("ERROR")
        .copied()
        .unwrap_or(0);
    figures.check(
        "operator: no ERROR log lines",
        errors == 0,
        format!("{errors} (log: {})", operator.process.log.display()),
    );
    figures.check(
        "operator: exits 0 on SIGTERM",
        figures.operator.exit_code == Some(0),
        format!("{:?}", figures.operator.exit_code),
    );
    result
}

async fn with_operator(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    emulator: &Process,
    tracker: &Tracker,
    operator: &mut Operator,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    create_n(settings, client, ivy, emulator, tracker, operator, figures).await?;
    idle(settings, client, ivy, operator, figures).await?;
    spec_changes(settings, client, ivy, tracker, operator, figures).await?;
    delete_all(settings, client, ivy, tracker, operator, figures).await?;
    figures.memory.end = operator.process.memory()?;
    Ok(())
}

/// Process start -> caches synced, -> first Ivy create, -> first Ready, with one resource
/// waiting for it.
async fn start_up(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    tracker: &Tracker,
    logs: &Path,
    figures: &mut Figures,
) -> anyhow::Result<Operator> {
    phase("operator start-up (one resource waiting)");
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    workload::create(&api, PROBE).await?;
    let seq = ivy.last_seq().await?;
    ivy.reset_counts().await?;
    let mut operator = procs::start_operator(
        &settings.operator,
        logs,
        ivy.base_url(),
        OPERATOR_NAMESPACE,
        settings.concurrency,
    )
    .await?;
    let started = operator.process.started;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let readyz = format!("http://{}/readyz", operator.metrics_addr);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        operator.process.ensure_running()?;
        if http
            .get(&readyz)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the operator's /readyz did not answer 200 within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    figures.startup.to_caches_synced_s = round(secs_since(started), 3);
    let ready_at = tracker.wait_ready(1, Duration::from_secs(120)).await?;
    figures.startup.to_first_ready_s = round((ready_at - started).as_secs_f64(), 3);
    let first_create = ivy
        .mutations_after(seq)
        .await?
        .into_iter()
        .find(|m| m.operation == "create")
        .context("the probe is Ready but the emulator logged no create")?;
    let nanos = first_create
        .received_at_unix_nanos
        .saturating_sub(operator.process.started_unix_nanos);
    figures.startup.to_first_ivy_create_s = round(nanos as f64 / 1e9, 3);
    figures.memory.start = operator.process.memory()?;
    Ok(operator)
}

/// N resources created at once, until all are Ready; what it cost the apiserver and Ivy.
async fn create_n(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    emulator: &Process,
    tracker: &Tracker,
    operator: &mut Operator,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let n = settings.n;
    phase(&format!(
        "creating {n} resources at concurrency {}, until all are Ready",
        settings.concurrency
    ));
    ivy.reset_counts().await?;
    let seq = ivy.last_seq().await?;
    let before = apiserver::snapshot(client).await?;
    let cpu = CpuWatch::new(&[
        ("operator", operator.process.pid),
        ("emulator", emulator.pid),
    ]);
    let cpu_before = cpu.sample();
    let reconciles = operator.reconciles().await?;
    let started = Instant::now();
    let apply = workload::create_all(client, OPERATOR_NAMESPACE, n, settings.concurrency).await?;
    let ready_at = tracker
        .wait_ready(n + 1, Duration::from_secs(300 + n as u64 / 5))
        .await?;
    let cpu_used = cpu.sample().since(&cpu_before);
    figures.memory.at_n_ready = operator.process.memory()?;
    operator.process.ensure_running()?;
    let writes = apiserver::snapshot(client).await?.since(&before);
    let calls = ivy.calls().await?;
    let reconciles = operator.reconciles().await?.saturating_sub(reconciles);
    let create = &mut figures.create;
    create.reconciles_per_subscription = round(reconciles as f64 / n as f64, 2);
    create.apply_s = round(apply.as_secs_f64(), 2);
    create.all_ready_s = round((ready_at - started).as_secs_f64(), 2);
    create.ratio_to_floor = round(create.all_ready_s / figures.floor.seconds.max(0.001), 2);
    create.writes_per_subscription = round(writes.total as f64 / n as f64, 2);
    create.writes = writes;
    create.ivy_calls_per_create = calls.per("create").map(|v| round(v, 3));
    let floor_cpu = figures.floor.cpu.apiserver_and_etcd().max(0.01);
    create.apiserver_cpu_ratio_to_floor = round(cpu_used.apiserver_and_etcd() / floor_cpu, 2);
    create.cpu = cpu_used;
    let mut handling = handling_ms(&ivy.mutations_after(seq).await?, "create");
    handling.sort_by(f64::total_cmp);
    create.emulator_create_ms_p50 = round(percentile(&handling, 50.0), 3);
    create.emulator_create_ms_p99 = round(percentile(&handling, 99.0), 3);

    let creates = calls.succeeded("create");
    let failed = calls.failed();
    create.ivy = calls;
    figures.check(
        "create: Ivy created exactly N subscriptions",
        creates == n as u64,
        format!("{creates} (N = {n})"),
    );
    figures.check(
        "create: no Ivy answer other than 2xx",
        failed == 0,
        format!("{failed} ({:?})", figures.create.ivy.failed_by_status),
    );
    let held = ivy.subscription_count().await?;
    figures.check(
        "create: the emulator holds N + 1 subscriptions (the probe)",
        held == n + 1,
        format!("{held}"),
    );
    check_secrets(client, tracker, figures).await
}

/// Every resource has its Secret, holding the subscription id its status names.
async fn check_secrets(
    client: &Client,
    tracker: &Tracker,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let api: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NAMESPACE);
    let selector = ivy_webhook_operator::controller::managed_secret_selector();
    let secrets = api.list(&ListParams::default().labels(&selector)).await?;
    let stored: HashMap<String, String> = secrets
        .items
        .into_iter()
        .filter_map(|s| {
            let name = s.metadata.name?;
            let id = s.data?.get("subscription-id")?.0.clone();
            Some((name, String::from_utf8_lossy(&id).into_owned()))
        })
        .collect();
    let resources = tracker.subscription_ids();
    let wrong: Vec<&String> = resources
        .iter()
        .filter(|(name, id)| {
            let secret = ivy_webhook_operator::crd::default_secret_name(name);
            id.is_none() || stored.get(&secret) != id.as_ref()
        })
        .map(|(name, _)| name)
        .collect();
    figures.check(
        "create: each resource's Secret holds the subscription id of its status",
        wrong.is_empty() && !resources.is_empty(),
        format!(
            "{} of {} wrong{}",
            wrong.len(),
            resources.len(),
            wrong
                .first()
                .map(|w| format!(", e.g. {w}"))
                .unwrap_or_default()
        ),
    );
    Ok(())
}

/// The idle window: what the apiserver and Ivy see while nothing changes.
async fn idle(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    operator: &mut Operator,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    phase(&format!(
        "settling {:?}, then idle for {:?}",
        settings.settle, settings.idle
    ));
    tokio::time::sleep(settings.settle).await;
    let before = apiserver::snapshot(client).await?;
    ivy.reset_counts().await?;
    let started = Instant::now();
    tokio::time::sleep(settings.idle).await;
    let writes = apiserver::snapshot(client).await?.since(&before);
    let calls = ivy.calls().await?;
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    operator.process.ensure_running()?;
    figures.memory.after_idle = operator.process.memory()?;
    let idle = &mut figures.idle;
    idle.window_s = round(minutes * 60.0, 1);
    idle.operator_writes_per_minute = round(writes.operator_resources as f64 / minutes, 2);
    idle.ivy_calls_per_minute = round(calls.total as f64 / minutes, 2);
    idle.writes = writes;
    idle.ivy = calls;
    Ok(())
}

/// Spec changes one after another: from the apiserver accepting each to the emulator
/// receiving the update.
async fn spec_changes(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    tracker: &Tracker,
    operator: &mut Operator,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    phase(&format!(
        "{} spec changes, one after another",
        settings.changes
    ));
    ivy.reset_counts().await?;
    let mut seq = ivy.last_seq().await?;
    let mut latencies = Vec::new();
    let mut handling = Vec::new();
    for change in 0..settings.changes {
        let name = workload::name(change % settings.n);
        let id = tracker
            .subscription_id(&name)
            .with_context(|| format!("{name} has no subscription id in its status"))?;
        workload::change_description(
            client,
            OPERATOR_NAMESPACE,
            &name,
            &format!("ivy bench change {change}"),
        )
        .await?;
        let accepted = procs::unix_nanos();
        let deadline = Instant::now() + Duration::from_secs(30);
        let update = loop {
            let entries = ivy.mutations_after(seq).await?;
            seq = entries.last().map_or(seq, |m| m.seq);
            let found = entries.into_iter().find(|m| {
                m.operation == "update"
                    && (200..300).contains(&m.status)
                    && m.subscription_id.as_deref() == Some(id.as_str())
            });
            if let Some(update) = found {
                break Some(update);
            }
            if Instant::now() > deadline {
                break None;
            }
            operator.process.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        if let Some(update) = update {
            let to_ivy = update.received_at_unix_nanos as f64 - accepted as f64;
            latencies.push(to_ivy / 1e6);
            handling.push(update.handling_micros as f64 / 1e3);
        }
    }
    let converged = tracker
        .wait_ready(settings.n + 1, Duration::from_secs(120))
        .await;
    let calls = ivy.calls().await?;
    latencies.sort_by(f64::total_cmp);
    handling.sort_by(f64::total_cmp);
    let changes = &mut figures.spec_changes;
    changes.count = settings.changes;
    changes.seen_at_ivy = latencies.len();
    changes.to_ivy_ms_p50 = round(percentile(&latencies, 50.0), 2);
    changes.to_ivy_ms_p99 = round(percentile(&latencies, 99.0), 2);
    changes.to_ivy_ms_max = round(latencies.last().copied().unwrap_or(0.0), 2);
    changes.emulator_update_ms_p50 = round(percentile(&handling, 50.0), 3);
    changes.emulator_update_ms_p99 = round(percentile(&handling, 99.0), 3);
    changes.ivy_calls_per_change =
        (settings.changes > 0).then(|| round(calls.total as f64 / settings.changes as f64, 3));
    let updates = calls.succeeded("update");
    let failed = calls.failed();
    changes.ivy = calls;
    let seen = figures.spec_changes.seen_at_ivy;
    figures.check(
        "spec changes: each reached Ivy as an update within 30 s",
        seen == settings.changes,
        format!("{seen} of {}", settings.changes),
    );
    figures.check(
        "spec changes: one update per change, no Ivy answer other than 2xx",
        updates == settings.changes as u64 && failed == 0,
        format!("{updates} updates, {failed} non-2xx"),
    );
    figures.check(
        "spec changes: every resource Ready for its new generation",
        converged.is_ok(),
        converged.map_or_else(|e| e.to_string(), |_| "yes".to_owned()),
    );
    Ok(())
}

/// Every resource deleted (one request each) -> every resource gone (the operator deleted
/// each remote subscription and removed its finalizer).
async fn delete_all(
    settings: &Settings,
    client: &Client,
    ivy: &Admin,
    tracker: &Tracker,
    operator: &mut Operator,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    phase("deleting every resource");
    ivy.reset_counts().await?;
    let names: Vec<String> = tracker.subscription_ids().into_keys().collect();
    let started = Instant::now();
    let requests =
        workload::delete_all(client, OPERATOR_NAMESPACE, names, settings.concurrency).await?;
    let gone_at = tracker
        .wait_empty(Duration::from_secs(300 + settings.n as u64 / 5))
        .await?;
    operator.process.ensure_running()?;
    let calls = ivy.calls().await?;
    let left = ivy.subscription_count().await?;
    let delete = &mut figures.delete;
    delete.requests_s = round(requests.as_secs_f64(), 2);
    delete.seconds = round((gone_at - started).as_secs_f64(), 2);
    delete.ivy_calls_per_delete = calls.per("delete").map(|v| round(v, 3));
    delete.subscriptions_left_at_ivy = left;
    let deletes = calls.succeeded("delete");
    let failed = calls.failed();
    delete.ivy = calls;
    let expected = settings.n as u64 + 1;
    figures.check(
        "delete: Ivy deleted every subscription (N + 1)",
        deletes == expected && left == 0,
        format!("{deletes} deletes, {left} left at Ivy"),
    );
    figures.check(
        "delete: no Ivy answer other than 2xx",
        failed == 0,
        format!("{failed}"),
    );
    Ok(())
}

/// The emulator's own time (ms) for each successful `operation` in `log`.
fn handling_ms(log: &[Mutation], operation: &str) -> Vec<f64> {
    log.iter()
        .filter(|m| m.operation == operation && (200..300).contains(&m.status))
        .map(|m| m.handling_micros as f64 / 1e3)
        .collect()
}
