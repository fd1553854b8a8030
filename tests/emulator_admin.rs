//! The admin API over HTTP (as scripts use it) and the `ivy-emulator` binary: flags, the
//! `listening on` line, graceful shutdown.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "emulator_support.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ivy_webhook_operator::emulator::{Emulator, EmulatorConfig, EmulatorError};
use ivy_webhook_operator::ivy::{Dialect, IvyError};
use serde_json::{Value, json};
use support::*;

async fn get(emu: &ivy_webhook_operator::emulator::RunningEmulator, path: &str) -> Value {
    raw()
        .get(emu.base_url().join(path).unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn admin_lists_subscriptions_with_secrets_and_creating_dialect() {
    let emu = emulator(config()).await;
    let created = client(&emu, Dialect::Internal)
        .create(&request(&url("admin")), &key("a"))
        .await
        .unwrap();
    client(&emu, Dialect::Service)
        .create(&request(&url("admin")), &key("b"))
        .await
        .unwrap();
    let list = get(&emu, "admin/subscriptions").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["created_via"], "internal");
    assert_eq!(list[0]["internal_id"], created.subscription.id);
    assert_eq!(
        list[0]["signing_secret"],
        created.signing_secret.unwrap().expose()
    );
    assert_eq!(list[0]["secret_source"], "subscription");
    assert_eq!(list[1]["created_via"], "service");
    assert_eq!(list[1]["secret_source"], "app");
    let app = get(&emu, "admin/app-signing-secret").await;
    assert_eq!(list[1]["signing_secret"], app["signing_secret"]);
    // Any id form finds it.
    let one = get(
        &emu,
        &format!(
            "admin/subscriptions/{}",
            list[0]["service_id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(one["id"], list[0]["id"]);
}

#[tokio::test]
async fn admin_delete_removes_a_subscription_behind_the_clients_back() {
    let emu = emulator(config()).await;
    let ivy = client(&emu, Dialect::Rest);
    let created = ivy.create(&request(&url("gone")), &key("g")).await.unwrap();
    let url = emu
        .base_url()
        .join(&format!("admin/subscriptions/{}", created.subscription.id))
        .unwrap();
    assert_eq!(
        raw().delete(url.clone()).send().await.unwrap().status(),
        200
    );
    assert_eq!(raw().delete(url).send().await.unwrap().status(), 404);
    assert!(matches!(
        ivy.get(&created.subscription.id).await,
        Err(IvyError::NotFound { .. })
    ));
}

#[tokio::test]
async fn faults_installed_over_http_apply_and_can_be_removed() {
    let emu = emulator(config()).await;
    let http = raw();
    let faults = emu.base_url().join("admin/faults").unwrap();
    let response = http
        .post(faults.clone())
        .json(&json!({"kind": "status", "status": 502, "dialect": "service", "route": "/api/service/webhook-subscription/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    assert!(matches!(
        client(&emu, Dialect::Service).list().await,
        Err(IvyError::Transient { .. })
    ));
    client(&emu, Dialect::Rest).list().await.unwrap();
    let installed = get(&emu, "admin/faults").await;
    assert_eq!(installed[0]["fired"], 1);
    let delete = emu.base_url().join(&format!("admin/faults/{id}")).unwrap();
    assert_eq!(http.delete(delete).send().await.unwrap().status(), 204);
    client(&emu, Dialect::Service).list().await.unwrap();
    // Nonsense is refused.
    let bad = http
        .post(faults)
        .json(&json!({"kind": "status", "rate": 3.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn request_counts_are_per_method_route_and_status() {
    let emu = emulator(config()).await;
    let ivy = client(&emu, Dialect::Rest);
    let created = ivy
        .create(&request(&url("count")), &key("c"))
        .await
        .unwrap();
    ivy.get(&created.subscription.id).await.unwrap();
    ivy.get("3f1c0000-0000-4000-8000-000000000001")
        .await
        .unwrap_err();
    let counts = get(&emu, "admin/requests").await;
    let find = |method: &str, route: &str, status: u64| {
        counts
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["method"] == method && c["route"] == route && c["status"] == status)
            .map(|c| c["count"].as_u64().unwrap())
    };
    assert_eq!(find("POST", "/webhook", 201), Some(1));
    assert_eq!(find("GET", "/webhook/{id}", 200), Some(1));
    assert_eq!(find("GET", "/webhook/{id}", 404), Some(1));
}

#[tokio::test]
async fn idempotency_switch_and_reset_over_http() {
    let emu = emulator(config()).await;
    let http = raw();
    let switch = emu.base_url().join("admin/idempotency").unwrap();
    http.put(switch.clone())
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get(&emu, "admin/idempotency").await,
        json!({"enabled": false})
    );
    assert!(!emu.state().idempotency());

    client(&emu, Dialect::Rest)
        .create(&request(&url("r")), &key("r"))
        .await
        .unwrap();
    emu.state()
        .add_fault(ivy_webhook_operator::emulator::FaultSpec::status(500));
    let reset = emu.base_url().join("admin/reset").unwrap();
    assert_eq!(http.post(reset).send().await.unwrap().status(), 204);
    assert!(emu.state().subscriptions().is_empty());
    assert!(emu.state().faults().is_empty());
    assert!(emu.state().idempotency(), "back to the configured setting");
}

#[tokio::test]
async fn admin_events_over_http() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let receiver = Receiver::start(vec![]).await;
    let created = client(&emu, Dialect::Rest)
        .create(&request(&receiver.url("ev")), &key("ev"))
        .await
        .unwrap();
    let events = emu.base_url().join("admin/events").unwrap();
    let response = raw()
        .post(events.clone())
        .json(&json!({"type": "payout.paid", "subscription_id": created.subscription.id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    receiver.wait_for(1).await;
    let deliveries = emu
        .state()
        .wait_for_deliveries(Duration::from_secs(3), |d| {
            d.iter().all(|d| !d.attempts.is_empty())
        })
        .await;
    assert_eq!(deliveries[0].event_type, "payout.paid");
    let listed = get(
        &emu,
        &format!("admin/deliveries?subscription={}", created.subscription.id),
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["state"], "delivered");
    let unknown = raw()
        .post(events)
        .json(&json!({"type": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn refuses_a_non_loopback_listen_address_unless_allowed() {
    let err = Emulator::spawn(EmulatorConfig::default(), "0.0.0.0:0".parse().unwrap())
        .await
        .err()
        .unwrap();
    assert!(matches!(err, EmulatorError::NonLoopbackListen { .. }));
}

#[tokio::test]
async fn unknown_routes_are_bare_404s_without_auth() {
    let emu = emulator(config()).await;
    let response = raw()
        .post(
            emu.base_url()
                .join("api/service/internal/webhook-subscription/archive")
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn dropping_the_emulator_frees_its_port() {
    let emu = emulator(config()).await;
    let addr = emu.addr();
    drop(emu);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let result = raw().get(format!("http://{addr}/healthz")).send().await;
    assert!(result.is_err(), "still serving after drop");
}

const BIN: &str = env!("CARGO_BIN_EXE_ivy-emulator");

#[test]
fn help_explains_every_flag() {
    let output = Command::new(BIN).arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--allow-non-loopback-listen",
        "--api-key ",
        "--api-key-file",
        "--allow-http-urls",
        "--plain-http-to-loopback",
        "--retry-schedule",
        "--delivery-timeout",
        "--no-idempotency",
        "--app-signing-secret-file",
        "--log-format",
        "--quirks",
        "--mutation-log-capacity",
    ] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(flag.trim_end()));
        let line = line.unwrap_or_else(|| panic!("{flag} missing from --help"));
        assert!(
            line.len() > flag.len() + 30,
            "{flag} is not explained: {line}"
        );
    }
}

#[test]
fn the_binary_prints_its_address_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# keys\nfile-key\n").unwrap();
    let secret = dir.path().join("app-secret");
    std::fs::write(&secret, "whsec_fromfile\n").unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "flag-key",
            "--retry-schedule",
            "100ms,200ms",
        ])
        .arg("--api-key-file")
        .arg(&keys)
        .arg("--app-signing-secret-file")
        .arg(&secret)
        .args(["--no-idempotency", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = raw();
        for (api_key, status) in [("flag-key", 200), ("file-key", 200), ("nope", 401)] {
            let response = http
                .get(format!("{base}/webhook"))
                .header("X-Ivy-Api-Key", api_key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{api_key}");
        }
        let app: Value = http
            .get(format!("{base}/admin/app-signing-secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(app["signing_secret"], "whsec_fromfile");
        let idempotency: Value = http
            .get(format!("{base}/admin/idempotency"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(idempotency["enabled"], false);
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "{exit:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
