//! The operator killed with SIGKILL at random moments while resources are created, rotated,
//! changed and deleted still converges: no duplicate and no orphan at Ivy, every Secret holds
//! the live secret of its one subscription. Runs with Ivy honouring `Idempotency-Key` and with
//! Ivy ignoring it.

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
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let stop = stop.clone();
        let dir = dir.path().to_path_buf();
        let ns = ns.name.clone();
        let base_url = emulator.base_url.clone();
        tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let emulator = EmulatorRef { base_url };
            let mut kills = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let mut operator = emulator.start_operator(&dir, &ns, kills).await;
                let life = Duration::from_millis(rng.random_range(200..1200));
                tokio::time::sleep(life).await;
                operator.process.kill().await;
                kills += 1;
            }
            kills
        })
    };

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
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_operator_converges_without_idempotency() {
    chaos(false).await;
}
