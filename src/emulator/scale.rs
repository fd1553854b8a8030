//! The emulator at benchmark scale: 10,000 subscriptions of four merchants. Checks that the
//! answers stay right (pages, lookups, URL uniqueness) and prints how long one create, one
//! get and one list page take over HTTP, so a run with `--nocapture` shows the figures that
//! `docs/ivy-emulator.md` quotes. Nothing here asserts a duration: the machine decides those.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::model::{Merchant, NewSubscription};
use super::{Emulator, EmulatorConfig, RunningEmulator};
use crate::ivy::Dialect;

const SUBSCRIPTIONS: usize = 10_000;
const MERCHANTS: usize = 4;
const KEYS: [&str; MERCHANTS] = ["scale-0", "scale-1", "scale-2", "scale-3"];
/// Repetitions per measured request; the median is reported.
const ROUNDS: usize = 25;

fn url(n: usize) -> String {
    format!("https://scale.example/hook/{n}")
}

async fn populated() -> RunningEmulator {
    let mut config = EmulatorConfig::default().with_api_key(KEYS[0]);
    for key in &KEYS[1..] {
        config = config.add_api_key(*key);
    }
    let emu = Emulator::spawn(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    {
        let mut inner = emu.shared.lock();
        for n in 0..SUBSCRIPTIONS {
            let new = NewSubscription {
                url: url(n),
                events: vec!["order_created".into()],
                description: Some(format!("ivy-webhook-operator uid {n}")),
                active: true,
            };
            inner
                .store
                .create(Merchant(n % MERCHANTS), Dialect::Rest, new, false)
                .unwrap();
        }
    }
    emu
}

/// Sends `build()` `ROUNDS` times; returns the median time and the last JSON answer.
async fn measure(build: impl Fn() -> reqwest::RequestBuilder) -> (Duration, u16, Value) {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut last = (0, Value::Null);
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let response = build().send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        times.push(started.elapsed());
        last = (status, body);
    }
    times.sort_unstable();
    (times[ROUNDS / 2], last.0, last.1)
}

#[tokio::test]
async fn at_ten_thousand_subscriptions_answers_stay_right_and_per_request_work_stays_small() {
    let emu = populated().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = emu.base_url();
    let per_merchant = SUBSCRIPTIONS / MERCHANTS;

    // The last page of merchant 0 by offset: its subscriptions are numbers 0, 4, 8, …
    let last_page = base
        .join(&format!("webhook?limit=100&offset={}", per_merchant - 100))
        .unwrap();
    let (page_time, status, page) =
        measure(|| http.get(last_page.clone()).header("X-Ivy-Api-Key", KEYS[0])).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], per_merchant);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 100);
    assert_eq!(items[0]["url"], url((per_merchant - 100) * MERCHANTS));
    assert_eq!(items[99]["url"], url((per_merchant - 1) * MERCHANTS));

    // A cursor page deep into merchant 1's list (internal dialect).
    let list = base
        .join("api/service/internal/webhook-subscription/list")
        .unwrap();
    let mut cursor = Value::Null;
    for _ in 0..20 {
        let body: Value = http
            .post(list.clone())
            .header("X-Ivy-Api-Key", KEYS[1])
            .json(&json!({"limit": 100, "cursor": cursor}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        cursor = body["next_cursor"].clone();
    }
    let (cursor_time, status, deep) = measure(|| {
        http.post(list.clone())
            .header("X-Ivy-Api-Key", KEYS[1])
            .json(&json!({"limit": 100, "cursor": cursor}))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(deep["data"][0]["endpoint_url"], url(2000 * MERCHANTS + 1));
    assert_eq!(deep["has_more"], true);

    // One get by id, and creates: the URL check is an index lookup, not a scan.
    let some_id = items[50]["id"].as_str().unwrap().to_owned();
    let one = base.join(&format!("webhook/{some_id}")).unwrap();
    let (get_time, status, got) =
        measure(|| http.get(one.clone()).header("X-Ivy-Api-Key", KEYS[0])).await;
    assert_eq!((status, got["id"].as_str()), (200, Some(some_id.as_str())));
    let create = base.join("webhook").unwrap();
    let taken = json!({"url": url(SUBSCRIPTIONS - 4), "events": ["test"]});
    let duplicate = http
        .post(create.clone())
        .header("X-Ivy-Api-Key", KEYS[0])
        .json(&taken)
        .send()
        .await
        .unwrap();
    assert_eq!(duplicate.status(), 409);
    let counter = std::sync::atomic::AtomicUsize::new(SUBSCRIPTIONS);
    let (create_time, status, created) = measure(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        http.post(create.clone())
            .header("X-Ivy-Api-Key", KEYS[0])
            .json(&json!({"url": url(n), "events": ["test"]}))
    })
    .await;
    assert_eq!(status, 201);
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(emu.state().subscription_count(), SUBSCRIPTIONS + ROUNDS);

    eprintln!(
        "emulator at {SUBSCRIPTIONS} subscriptions (median of {ROUNDS}, {} build): \
         create {create_time:?}, get {get_time:?}, rest page of 100 at the end \
         {page_time:?}, internal cursor page of 100 deep in the list {cursor_time:?}",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    emu.shutdown().await;
}
