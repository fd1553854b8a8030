//! The operator runs with exactly the permissions the Helm chart grants: the chart is installed
//! into the control plane, and the operator runs as a local process with the chart's arguments,
//! authenticated as the chart's ServiceAccount (a token from the TokenRequest API). The main
//! scenario must pass and no call may be forbidden, except restarting a workload when the chart
//! was installed without `restartOnRotation.enabled`: that is a RestartForbidden Warning Event.

// Test helpers outside `#[test]` functions may panic like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(60);

async fn helm(args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new("helm")
        .args(args)
        .output()
        .await
        .expect("helm on PATH");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A kubeconfig for the cluster of `KUBECONFIG` that authenticates with `token`.
async fn kubeconfig_for_token(dir: &Path, token: &str) -> PathBuf {
    let (ok, raw, err) = kubectl(&["config", "view", "--raw", "--minify", "-o", "json"]).await;
    assert!(ok, "{err}");
    let admin: Value = serde_json::from_str(&raw).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": cluster}],
        "users": [{"name": "operator-sa", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "test", "user": "operator-sa"}}],
        "current-context": "operator",
    });
    let path = dir.join("operator-sa.kubeconfig");
    std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
    path
}

/// The operator container's arguments from the rendered chart.
fn deployment_args(manifests: &str) -> Vec<String> {
    for document in manifests.split("\n---") {
        let Ok(value) = serde_norway::from_str::<Value>(document) else {
            continue;
        };
        if value["kind"] == "Deployment" {
            return value["spec"]["template"]["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect();
        }
    }
    panic!("no Deployment in the rendered chart");
}

async fn run_with_chart_permissions(watch_one_namespace: bool, restart_on_rotation: bool) {
    let Some(client) = cluster().await else {
        return;
    };
    install_crd().await;
    let release_ns = TestNamespace::create(&client, "rbac-release").await;
    let app_ns = TestNamespace::create(&client, "rbac-app").await;
    let dir = scratch();
    let emulator = Emulator::start(dir.path(), &[]).await;
    let release = format!("r{}", &release_ns.name[release_ns.name.len() - 8..]);

    let (ok, out, err) = kubectl(&[
        "create",
        "secret",
        "generic",
        "ivy-api-key",
        "-n",
        &release_ns.name,
        &format!("--from-literal=api-key={API_KEY}"),
    ])
    .await;
    assert!(ok, "{out}{err}");
    let chart = repo_root().join("charts/ivy-webhook-operator");
    let mut values = vec![
        format!("ivy.baseUrl={}", emulator.base_url),
        "ivy.apiKeySecret.name=ivy-api-key".to_owned(),
        "resyncInterval=3s".to_owned(),
        "rotationGracePeriod=3s".to_owned(),
        "leaderElection.leaseDuration=6s".to_owned(),
        // The tests share the CRD that install_crd() applied; a release may not take it over.
        "crds.enabled=false".to_owned(),
    ];
    if watch_one_namespace {
        values.push(format!("watchNamespaces={{{}}}", app_ns.name));
    }
    values.push(format!("restartOnRotation.enabled={restart_on_rotation}"));
    let mut args = vec![
        "install",
        &release,
        chart.to_str().unwrap(),
        "-n",
        &release_ns.name,
    ];
    let set_args: Vec<String> = values
        .iter()
        .flat_map(|v| ["--set".to_owned(), v.clone()])
        .collect();
    args.extend(set_args.iter().map(String::as_str));
    let (ok, out, err) = helm(&args).await;
    assert!(ok, "helm install failed: {out}{err}");
    let mut template = vec![
        "template",
        &release,
        chart.to_str().unwrap(),
        "-n",
        &release_ns.name,
    ];
    template.extend(set_args.iter().map(String::as_str));
    let (ok, manifests, err) = helm(&template).await;
    assert!(ok, "{err}");

    // The chart's own arguments, with the key file and the metrics port made local.
    let key_file = dir.path().join("api-key");
    std::fs::write(&key_file, API_KEY).unwrap();
    let args: Vec<String> = deployment_args(&manifests)
        .into_iter()
        .map(|a| {
            if a.starts_with("--ivy-api-key-file=") {
                format!("--ivy-api-key-file={}", key_file.display())
            } else if a.starts_with("--metrics-addr=") {
                "--metrics-addr=127.0.0.1:0".to_owned()
            } else {
                a
            }
        })
        .collect();
    assert!(args.contains(&"--leader-election".to_owned()), "{args:?}");
    if watch_one_namespace {
        assert!(
            args.contains(&format!("--watch-namespace={}", app_ns.name)),
            "{args:?}"
        );
    }

    let sa = format!("{release}-ivy-webhook-operator");
    let (ok, token, err) = kubectl(&[
        "create",
        "token",
        &sa,
        "-n",
        &release_ns.name,
        "--duration=1h",
    ])
    .await;
    assert!(ok, "TokenRequest failed: {err}");
    let kubeconfig = kubeconfig_for_token(dir.path(), token.trim()).await;
    let (ok, out, _) = tokio::process::Command::new("kubectl")
        .args(["auth", "can-i", "delete", "secrets", "-n", &app_ns.name])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stdout).into_owned(),
                (),
            )
        })
        .unwrap();
    assert!(
        !ok && out.trim() == "no",
        "the ServiceAccount must not delete Secrets"
    );

    let program = PathBuf::from(env!("CARGO_BIN_EXE_ivy-webhook-operator"));
    let env = [
        ("KUBECONFIG", kubeconfig.display().to_string()),
        ("POD_NAME", format!("{release}-pod-0")),
        ("POD_NAMESPACE", release_ns.name.clone()),
    ];
    let (operator, _) = Process::start(
        "operator-as-sa",
        &program,
        &args,
        &env,
        dir.path().join("operator.log"),
        Some("became the leader"),
    )
    .await;

    // The main scenario: create, Ready, Secret, rotation (restarting a workload), drift,
    // Orphan, delete.
    apply_receiver_deployment(&app_ns.name, "receiver").await;
    apply(
        &app_ns.name,
        &manifest(
            "orders",
            "https://shop.example.com/rbac/orders",
            &["order_created"],
            "  restartOnRotation: [{kind: Deployment, name: receiver}]\n",
        ),
    )
    .await;
    wait_ready(&app_ns.name, "orders", "60s").await;
    let data = secret_data(&client, &app_ns.name, "orders-ivy-webhook")
        .await
        .unwrap();
    let id = data["subscription-id"].clone();
    let remote = emulator.subscription(&id).await.unwrap();
    assert_eq!(
        data["signing-secret"],
        remote["signing_secret"].as_str().unwrap()
    );

    let (ok, out, err) = kubectl(&[
        "annotate",
        "-n",
        &app_ns.name,
        "ivywh/orders",
        "webhooks.ivy.dev/rotate-secret=1",
    ])
    .await;
    assert!(ok, "{out}{err}");
    eventually(
        WAIT,
        "rotation completed with the chart's permissions",
        || async {
            let data = secret_data(&client, &app_ns.name, "orders-ivy-webhook").await?;
            (data["subscription-id"] != id
                && !data.contains_key("previous-signing-secret")
                && emulator.subscription(&id).await.is_none())
            .then_some(())
        },
    )
    .await;
    if restart_on_rotation {
        eventually(
            WAIT,
            "the receiver's pods restarted for the new secret",
            || async { deployment_secret_hash(&client, &app_ns.name, "receiver").await },
        )
        .await;
    } else {
        eventually(WAIT, "a RestartForbidden Warning Event", || async {
            event_reasons(&app_ns.name, "orders")
                .await
                .contains(&"RestartForbidden".to_owned())
                .then_some(())
        })
        .await;
        assert_eq!(
            deployment_secret_hash(&client, &app_ns.name, "receiver").await,
            None
        );
    }

    apply(
        &app_ns.name,
        &manifest(
            "kept",
            "https://shop.example.com/rbac/kept",
            &["test"],
            "  deletionPolicy: Orphan\n",
        ),
    )
    .await;
    wait_ready(&app_ns.name, "kept", "60s").await;
    let (ok, out, err) = kubectl(&[
        "delete",
        "-n",
        &app_ns.name,
        "ivywh/orders",
        "ivywh/kept",
        "--timeout=60s",
    ])
    .await;
    assert!(ok, "deletion with the chart's permissions: {out}{err}");
    let left = emulator.subscriptions().await;
    assert_eq!(
        left.len(),
        1,
        "only the orphaned subscription stays: {left:#?}"
    );
    assert!(
        secret_data(&client, &app_ns.name, "kept-ivy-webhook")
            .await
            .is_some(),
        "orphaned Secret kept"
    );

    // Any call the chart does not allow would have been logged as an RBAC denial. (Other 403s,
    // such as writes into a namespace another test is deleting, are not about permissions.)
    let log = operator.log_text();
    assert!(
        !log.contains("is forbidden: User"),
        "a call was forbidden with the chart's RBAC:\n{log}"
    );
    let (ok, out, err) = helm(&["uninstall", &release, "-n", &release_ns.name]).await;
    assert!(ok, "{out}{err}");
}

// One test, two variants in turn: an operator watching all namespaces sees every other
// test's resources, so it must not run beside the one-namespace variant. Each variant has the
// other setting of restartOnRotation.enabled, so both are covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_rbac_is_enough_for_the_main_scenario() {
    run_with_chart_permissions(true, false).await;
    run_with_chart_permissions(false, true).await;
}
