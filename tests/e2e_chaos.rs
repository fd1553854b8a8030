//! The operator killed with SIGKILL at random moments while resources are created, rotated,
//! changed and deleted still converges: no duplicate and no orphan at Ivy, every Secret holds
//! the live secret of its one subscription. Runs with Ivy honouring `Idempotency-Key`, and at
//! scale (50 resources, 100+ kills) against an unfriendly Ivy that ignores it.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use rand::{Rng, SeedableRng};
use support::*;

const NAMES: [&str; 6] = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
const DELETED: [&str; 2] = ["bravo", "echo"];
const ROTATED: [&str; 3] = ["alpha", "charlie", "foxtrot"];

async fn chaos(idempotency: bool) {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let ns = TestNamespace::create(
        &client,
        if idempotency {
            "chaos-idem"
        } else {
            "chaos-noidem"
        },
    )
    .await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), &[]).await;
    emulator.set_idempotency(idempotency).await;
    let seed: u64 = rand::rng().random();
    eprintln!("chaos seed {seed} (idempotency {idempotency})");

    // The killer: restarts the operator and SIGKILLs it after a random 0.2-1.2 s, until told to stop.
    let killer = Killer::spawn(&emulator, dir.path(), &ns.name, seed, 200..1200, 0);

    for name in NAMES {
        apply(
            &ns.name,
            &manifest(
                name,
                &format!("https://shop.example.com/chaos/{name}"),
                &["order_created"],
                "",
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ROTATED {
        let (ok, out, err) = kubectl(&[
            "annotate",
            "-n",
            &ns.name,
            &format!("ivywh/{name}"),
            "webhooks.ivy.dev/rotate-secret=chaos-1",
            "--overwrite",
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    let (ok, out, err) = kubectl(&[
        "patch",
        "-n",
        &ns.name,
        "ivywh/delta",
        "--type=merge",
        "-p",
        r#"{"spec":{"url":"https://shop.example.com/chaos/delta-moved"}}"#,
    ])
    .await;
    assert!(ok, "{out}{err}");
    let mut uids = std::collections::BTreeMap::new();
    for name in NAMES {
        uids.insert(
            name,
            get_sub(&client, &ns.name, name)
                .await
                .unwrap()
                .uid()
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for name in DELETED {
        let (ok, out, err) = kubectl(&[
            "delete",
            "-n",
            &ns.name,
            &format!("ivywh/{name}"),
            "--wait=false",
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let kills = killer.stop().await;
    eprintln!("killed the operator {kills} times");
    assert!(kills >= 5, "too few kills to mean anything: {kills}");

    // One last operator that lives; everything must converge.
    let _survivor = Operator::start(
        dir.path(),
        &ns.name,
        &emulator.base_url,
        &OperatorOptions::default(),
        "survivor",
    )
    .await;
    for name in DELETED {
        eventually(
            Duration::from_secs(90),
            &format!("{name} deleted"),
            || async {
                get_sub(&client, &ns.name, name)
                    .await
                    .is_none()
                    .then_some(())
            },
        )
        .await;
    }
    let live: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| !DELETED.contains(n))
        .collect();
    for name in &live {
        eventually(
            Duration::from_secs(90),
            &format!("{name} converged"),
            || async {
                let sub = get_sub(&client, &ns.name, name).await?;
                let ready = sub.ready_condition()?.status == "True";
                let data = secret_data(&client, &ns.name, &format!("{name}-ivy-webhook")).await?;
                let rotated =
                    !ROTATED.contains(name) || !data.contains_key("previous-signing-secret");
                let marked = marked_for(&emulator, &sub.uid()?).await;
                (ready && rotated && marked.len() == 1).then_some(())
            },
        )
        .await;
    }

    let all = emulator.subscriptions().await;
    assert_eq!(
        all.len(),
        live.len(),
        "one subscription per live resource, nothing else: {all:#?}"
    );
    for name in DELETED {
        assert!(
            marked_for(&emulator, &uids[name]).await.is_empty(),
            "orphan of {name}"
        );
    }
    for name in &live {
        let marked = marked_for(&emulator, &uids[name]).await;
        assert_eq!(marked.len(), 1, "{name}: {marked:#?}");
        let remote = &marked[0];
        let data = secret_data(&client, &ns.name, &format!("{name}-ivy-webhook"))
            .await
            .unwrap();
        assert_eq!(
            data["subscription-id"],
            remote["rest_id"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            data["signing-secret"],
            remote["signing_secret"].as_str().unwrap(),
            "{name}: the Secret holds the live secret"
        );
        let expected_url = if *name == "delta" {
            "https://shop.example.com/chaos/delta-moved".to_owned()
        } else {
            format!("https://shop.example.com/chaos/{name}")
        };
        assert_eq!(remote["url"], expected_url.as_str(), "{name}");
    }
    for name in ROTATED {
        let sub = get_sub(&client, &ns.name, name).await.unwrap();
        let (_, events, _) = kubectl(&[
            "get",
            "events",
            "-n",
            &ns.name,
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "name",
        ])
        .await;
        assert!(!events.is_empty(), "{name} has events");
        assert!(sub.status.unwrap().subscription_id.is_some());
    }
}

/// Restarts the operator and SIGKILLs it after a random life (milliseconds in `life`), until
/// stopped and at least `min_kills` kills are done.
struct Killer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u32>,
}

impl Killer {
    fn spawn(
        emulator: &Emulator,
        dir: &std::path::Path,
        ns: &str,
        seed: u64,
        life: std::ops::Range<u64>,
        min_kills: u32,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let stop = stop.clone();
            let dir = dir.to_path_buf();
            let ns = ns.to_owned();
            let emulator = EmulatorRef {
                base_url: emulator.base_url.clone(),
            };
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut kills = 0u32;
                while !stop.load(Ordering::SeqCst) || kills < min_kills {
                    let mut operator = emulator.start_operator(&dir, &ns, kills).await;
                    let lived = Duration::from_millis(rng.random_range(life.clone()));
                    tokio::time::sleep(lived).await;
                    operator.process.kill().await;
                    kills += 1;
                }
                kills
            })
        };
        Self { stop, task }
    }

    /// Stops after the current life (and the minimum); returns the number of kills.
    async fn stop(self) -> u32 {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

/// What the killer task needs of the emulator (the emulator itself stays with the test).
struct EmulatorRef {
    base_url: String,
}

impl EmulatorRef {
    async fn start_operator(&self, dir: &std::path::Path, ns: &str, n: u32) -> Operator {
        Operator::start(
            dir,
            ns,
            &self.base_url,
            &OperatorOptions {
                grace: "2s",
                ..OperatorOptions::default()
            },
            &format!("operator-{n}"),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_operator_converges_with_idempotency() {
    chaos(true).await;
}

/// Names of the scale run: `r00`..`r49`; every fifth from 0 and 1 is rotated, from 2 moved to
/// another URL, from 3 deleted.
fn scale_names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("r{i:02}")).collect()
}

fn scale_url(name: &str, moved: bool) -> String {
    let suffix = if moved { "-moved" } else { "" };
    format!("https://shop.example.com/chaos/{name}{suffix}")
}

/// 50 resources, 100+ SIGKILLs, an Ivy with every unfriendly quirk (idempotency ignored, bare
/// and reworded 409s, short pages, JSON 404s, proxy 502s). Checked through the emulator's admin
/// API: every resource Ready with the live secret of its one subscription, every rotation
/// answered, and nothing left at Ivy once all are deleted.
async fn chaos_at_scale(count: usize, min_kills: u32) {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let ns = TestNamespace::create(&client, "chaos-scale").await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), &["--quirks", "unfriendly"]).await;
    let seed: u64 = rand::rng().random();
    eprintln!("chaos seed {seed} ({count} resources, at least {min_kills} kills)");
    let names = scale_names(count);
    let role = |i: usize| i % 5;
    let rotated: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| role(*i) < 2)
        .map(|(_, n)| n)
        .collect();
    let moved: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| role(*i) == 2)
        .map(|(_, n)| n)
        .collect();
    let deleted: Vec<&String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| role(*i) == 3)
        .map(|(_, n)| n)
        .collect();

    let killer = Killer::spawn(&emulator, dir.path(), &ns.name, seed, 100..900, min_kills);

    let all: Vec<String> = names
        .iter()
        .map(|name| manifest(name, &scale_url(name, false), &["order_created"], ""))
        .collect();
    apply(&ns.name, &all.join("---\n")).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    for name in &rotated {
        let (ok, out, err) = kubectl(&[
            "annotate",
            "-n",
            &ns.name,
            &format!("ivywh/{name}"),
            "webhooks.ivy.dev/rotate-secret=chaos-1",
            "--overwrite",
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    for name in &moved {
        let patch = format!(r#"{{"spec":{{"url":"{}"}}}}"#, scale_url(name, true));
        let (ok, out, err) = kubectl(&[
            "patch",
            "-n",
            &ns.name,
            &format!("ivywh/{name}"),
            "--type=merge",
            "-p",
            &patch,
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    let mut uids = std::collections::BTreeMap::new();
    for name in &names {
        let sub = get_sub(&client, &ns.name, name).await.unwrap();
        uids.insert(name.clone(), sub.uid().unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in &deleted {
        let (ok, out, err) = kubectl(&[
            "delete",
            "-n",
            &ns.name,
            &format!("ivywh/{name}"),
            "--wait=false",
        ])
        .await;
        assert!(ok, "{out}{err}");
    }
    let kills = killer.stop().await;
    eprintln!("killed the operator {kills} times");
    assert!(kills >= min_kills, "{kills} kills");

    let survivor = Operator::start(
        dir.path(),
        &ns.name,
        &emulator.base_url,
        &OperatorOptions::default(),
        "survivor",
    )
    .await;
    let live: Vec<&String> = names.iter().filter(|n| !deleted.contains(n)).collect();
    eventually(
        Duration::from_secs(180),
        "every resource converged",
        || async {
            for name in &deleted {
                if get_sub(&client, &ns.name, name).await.is_some() {
                    return None;
                }
            }
            let remotes = emulator.subscriptions().await;
            for name in &live {
                let sub = get_sub(&client, &ns.name, name).await?;
                if sub.ready_condition()?.status != "True" {
                    return None;
                }
                let secret =
                    secret_object(&client, &ns.name, &format!("{name}-ivy-webhook")).await?;
                let data = decoded(&secret);
                if data.contains_key("previous-signing-secret") {
                    return None;
                }
                if rotated.contains(name) && rotation_answered(&secret) != Some("chaos-1") {
                    return None;
                }
                let marker = format!("[ivywh:{}]", uids[*name]);
                let mine: Vec<_> = remotes
                    .iter()
                    .filter(|r| {
                        r["description"]
                            .as_str()
                            .is_some_and(|d| d.ends_with(&marker))
                    })
                    .collect();
                if mine.len() != 1 || data.get("subscription-id")? != mine[0]["rest_id"].as_str()? {
                    return None;
                }
            }
            (remotes.len() == live.len()).then_some(())
        },
    )
    .await;

    // The checks the loop above waited for, stated once more with their reasons.
    let remotes = emulator.subscriptions().await;
    assert_eq!(
        remotes.len(),
        live.len(),
        "one subscription per live resource"
    );
    for name in &live {
        let data = secret_data(&client, &ns.name, &format!("{name}-ivy-webhook"))
            .await
            .unwrap();
        let remote = emulator
            .subscription(&data["subscription-id"])
            .await
            .unwrap_or_else(|| panic!("{name}: the Secret names a live subscription"));
        assert_eq!(
            data["signing-secret"],
            remote["signing_secret"].as_str().unwrap(),
            "{name}: the Secret holds the emulator's secret for its subscription"
        );
        let url = scale_url(name, moved.contains(name));
        assert_eq!(remote["url"], url.as_str(), "{name}");
    }

    let (ok, out, err) =
        kubectl(&["delete", "-n", &ns.name, "ivywh", "--all", "--timeout=120s"]).await;
    assert!(ok, "{out}{err}");
    let left = emulator.subscriptions().await;
    assert!(left.is_empty(), "nothing left at Ivy: {left:#?}");
    drop(survivor);
}

/// The Secret's record of the rotation its secret answers.
fn rotation_answered(secret: &k8s_openapi::api::core::v1::Secret) -> Option<&str> {
    secret
        .metadata
        .annotations
        .as_ref()?
        .get("webhooks.ivy.dev/rotation")
        .map(String::as_str)
}

fn decoded(
    secret: &k8s_openapi::api::core::v1::Secret,
) -> std::collections::BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

async fn secret_object(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::Secret> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_operator_converges_at_scale_against_an_unfriendly_ivy() {
    chaos_at_scale(50, 100).await;
}
