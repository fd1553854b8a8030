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

/// A dialect request over plain HTTP as merchant `api_key`; returns status and JSON body.
async fn call(
    emu: &ivy_webhook_operator::emulator::RunningEmulator,
    method: reqwest::Method,
    path: &str,
    api_key: &str,
    body: Option<Value>,
    idempotency_key: Option<&str>,
) -> (u16, Value) {
    let mut request = raw()
        .request(method, emu.base_url().join(path).unwrap())
        .header("X-Ivy-Api-Key", api_key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

const INTERNAL: &str = "api/service/internal/webhook-subscription";
const SERVICE: &str = "api/service/webhook-subscription";

fn unix_nanos_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test]
async fn operations_are_counted_per_dialect_and_status_with_later_pages_apart() {
    use ivy_webhook_operator::emulator::Operation;
    use reqwest::Method;
    let emu = emulator(config()).await;
    for n in 0..3 {
        let body = json!({"url": format!("https://ops.example/{n}"), "events": ["test"]});
        assert_eq!(
            call(&emu, Method::POST, "webhook", KEY, Some(body), None)
                .await
                .0,
            201
        );
    }
    let duplicate = json!({"url": "https://ops.example/0", "events": ["test"]});
    assert_eq!(
        call(&emu, Method::POST, "webhook", KEY, Some(duplicate), None)
            .await
            .0,
        409
    );
    call(&emu, Method::GET, "webhook?limit=2", KEY, None, None).await;
    call(
        &emu,
        Method::GET,
        "webhook?limit=2&offset=2",
        KEY,
        None,
        None,
    )
    .await;
    let (_, first) = call(
        &emu,
        Method::POST,
        &format!("{INTERNAL}/list"),
        KEY,
        Some(json!({"limit": 2})),
        None,
    )
    .await;
    let cursor = first["next_cursor"].clone();
    let next = json!({"limit": 2, "cursor": cursor});
    let list = format!("{INTERNAL}/list");
    call(&emu, Method::POST, &list, KEY, Some(next), None).await;
    let skip = json!({"limit": 2, "skip": 2});
    call(
        &emu,
        Method::POST,
        &format!("{SERVICE}/list"),
        KEY,
        Some(skip),
        None,
    )
    .await;
    let ping = json!({"id": "0123456789abcdef0123456789abcdef"});
    call(
        &emu,
        Method::POST,
        &format!("{SERVICE}/ping"),
        KEY,
        Some(ping),
        None,
    )
    .await;
    call(&emu, Method::GET, "webhook", "wrong-key", None, None).await;

    let counts = get(&emu, "admin/operations").await;
    let count = |dialect: &str, operation: &str, status: u64| {
        counts
            .as_array()
            .unwrap()
            .iter()
            .find(|c| {
                c["dialect"] == dialect && c["operation"] == operation && c["status"] == status
            })
            .map(|c| c["count"].as_u64().unwrap())
    };
    assert_eq!(count("rest", "create", 201), Some(3));
    assert_eq!(count("rest", "create", 409), Some(1));
    assert_eq!(count("rest", "list", 200), Some(1));
    assert_eq!(count("rest", "list", 401), Some(1));
    assert_eq!(count("rest", "list-page", 200), Some(1));
    assert_eq!(count("internal", "list", 200), Some(1));
    assert_eq!(count("internal", "list-page", 200), Some(1));
    assert_eq!(count("service", "list-page", 200), Some(1));
    assert_eq!(count("service", "trigger", 404), Some(1));
    let state = emu.state();
    assert_eq!(state.operation_count(Dialect::Rest, Operation::Create), 4);
    assert_eq!(state.operation_count(Dialect::Service, Operation::List), 0);

    let reset = emu.base_url().join("admin/requests").unwrap();
    assert_eq!(raw().delete(reset).send().await.unwrap().status(), 204);
    assert!(
        get(&emu, "admin/operations")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
    let routes = get(&emu, "admin/requests").await;
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["route"].as_str().unwrap().starts_with("/admin/")),
        "{routes}"
    );
    assert_eq!(
        state.subscriptions().len(),
        3,
        "counts reset, subscriptions stay"
    );
}

#[tokio::test]
async fn the_mutation_log_has_ids_urls_arrival_and_handling_times_and_replays() {
    use reqwest::Method;
    let emu = emulator(config()).await;
    let before = unix_nanos_now();
    let create = json!({"endpoint_url": "https://log.example/a", "event_types": ["test"]});
    let create_path = format!("{INTERNAL}/create");
    let (_, created) = call(
        &emu,
        Method::POST,
        &create_path,
        KEY,
        Some(create.clone()),
        Some("log-1"),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let update = json!({"subscription_id": id, "endpoint_url": "https://log.example/b"});
    call(
        &emu,
        Method::POST,
        &format!("{INTERNAL}/update"),
        KEY,
        Some(update),
        None,
    )
    .await;
    call(
        &emu,
        Method::POST,
        &create_path,
        KEY,
        Some(create),
        Some("log-1"),
    )
    .await;
    let clash = json!({"endpoint_url": "https://log.example/b", "event_types": ["test"]});
    assert_eq!(
        call(&emu, Method::POST, &create_path, KEY, Some(clash), None)
            .await
            .0,
        409
    );
    let delete = json!({"subscription_id": id});
    call(
        &emu,
        Method::POST,
        &format!("{INTERNAL}/delete"),
        KEY,
        Some(delete),
        None,
    )
    .await;
    call(&emu, Method::GET, "webhook", KEY, None, None).await;
    let after = unix_nanos_now();

    let log = get(&emu, "admin/mutations").await;
    let log = log.as_array().unwrap();
    let column = |name: &str| log.iter().map(|m| m[name].clone()).collect::<Vec<_>>();
    assert_eq!(
        column("seq"),
        [json!(1), json!(2), json!(3), json!(4), json!(5)]
    );
    assert_eq!(
        column("operation"),
        [
            json!("create"),
            json!("update"),
            json!("create"),
            json!("create"),
            json!("delete")
        ]
    );
    assert_eq!(
        column("status"),
        [json!(200), json!(200), json!(200), json!(409), json!(200)]
    );
    assert_eq!(
        column("replayed"),
        [
            json!(false),
            json!(false),
            json!(true),
            json!(false),
            json!(false)
        ]
    );
    let ids = column("subscription_id");
    assert_eq!(
        ids,
        [json!(id), json!(id), json!(id), Value::Null, json!(id)]
    );
    assert_eq!(
        column("url"),
        [
            json!("https://log.example/a"),
            json!("https://log.example/b"),
            json!("https://log.example/a"),
            Value::Null,
            json!("https://log.example/b"),
        ]
    );
    let mut last = before;
    for entry in log {
        assert_eq!(entry["dialect"], "internal");
        let at = entry["received_at_unix_nanos"].as_u64().unwrap();
        assert!(last <= at && at <= after, "{entry}");
        last = at;
        assert!(entry["handling_micros"].as_u64().unwrap() <= (after - before) / 1000);
    }
    let tail = get(&emu, "admin/mutations?after=3").await;
    assert_eq!(tail.as_array().unwrap().len(), 2);
    assert_eq!(emu.state().mutations_after(4).len(), 1);
    let clear = emu.base_url().join("admin/mutations").unwrap();
    assert_eq!(raw().delete(clear).send().await.unwrap().status(), 204);
    assert!(emu.state().mutations().is_empty());
}

#[tokio::test]
async fn the_mutation_log_keeps_only_the_newest_entries() {
    use reqwest::Method;
    let emu = emulator(config().mutation_log_capacity(2)).await;
    for n in 0..3 {
        let body = json!({"url": format!("https://bound.example/{n}"), "events": ["test"]});
        call(&emu, Method::POST, "webhook", KEY, Some(body), None).await;
    }
    let log = emu.state().mutations();
    let kept: Vec<(u64, Option<String>)> = log.iter().map(|m| (m.seq, m.url.clone())).collect();
    assert_eq!(
        kept,
        [
            (2, Some("https://bound.example/1".to_owned())),
            (3, Some("https://bound.example/2".to_owned()))
        ]
    );
}

#[tokio::test]
async fn admin_subscriptions_name_each_merchant_and_filter_by_it() {
    use reqwest::Method;
    let emu = emulator(config()).await;
    for (api_key, n) in [(KEY, 0), (OTHER_KEY, 1), (KEY, 2)] {
        let body = json!({"url": format!("https://m.example/{n}"), "events": ["test"]});
        call(&emu, Method::POST, "webhook", api_key, Some(body), None).await;
    }
    let all = get(&emu, "admin/subscriptions").await;
    let merchants: Vec<Value> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["merchant"], s["merchant_name"]]))
        .collect();
    assert_eq!(
        merchants,
        [
            json!([0, "merchant_1"]),
            json!([1, "merchant_2"]),
            json!([0, "merchant_1"])
        ]
    );
    let other = get(&emu, "admin/subscriptions?merchant=1").await;
    assert_eq!(other.as_array().unwrap().len(), 1);
    assert_eq!(other[0]["url"], "https://m.example/1");
    assert!(
        other[0]["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    assert_eq!(emu.state().subscriptions_of(0).len(), 2);
    assert_eq!(emu.state().subscription_count(), 3);
}
