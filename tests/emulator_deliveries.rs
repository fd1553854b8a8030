//! Deliveries from the emulator to an in-test receiver on 127.0.0.1: the signed body a
//! receiver sees (checked with the client's `verify_signature`), retries on the shrunken
//! schedule, re-sends, and the loopback-only rule.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "emulator_support.rs"]
mod support;

use std::time::Duration;

use ivy_webhook_operator::emulator::{Delivery, DeliveryState, RunningEmulator};
use ivy_webhook_operator::ivy::{
    CreatedSubscription, Dialect, SharedIvyApi, SignatureError, SigningSecret, verify_signature,
};
use support::*;

/// Creates a subscription to `url` through `ivy` and has Ivy send it the `test` event.
async fn subscribe_and_test(ivy: &SharedIvyApi, url: &str, key_value: &str) -> CreatedSubscription {
    let created = ivy.create(&request(url), &key(key_value)).await.unwrap();
    ivy.trigger_test(&created.subscription.id).await.unwrap();
    created
}

/// The deliveries once one of them has failed (or after 3 s).
async fn once_one_failed(emu: &RunningEmulator) -> Vec<Delivery> {
    emu.state()
        .wait_for_deliveries(Duration::from_secs(3), |d| {
            d.iter().any(|d| d.state == DeliveryState::Failed)
        })
        .await
}

fn signature_of(received: &Received) -> String {
    received.headers["x-ivy-signature"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_triggered_test_event_verifies_with_the_subscriptions_secret_in_every_dialect() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    for dialect in Dialect::ALL {
        let receiver = Receiver::start(vec![]).await;
        let ivy = client(&emu, dialect);
        let created = ivy
            .create(
                &request(&receiver.url("hooks/ivy")),
                &key(&format!("t-{dialect}")),
            )
            .await
            .unwrap();
        // service subscriptions are signed with the merchant app's secret.
        let secret = created
            .signing_secret
            .unwrap_or_else(|| SigningSecret::new(emu.state().app_signing_secret()));
        ivy.trigger_test(&created.subscription.id).await.unwrap();

        let got = receiver.wait_for(1).await;
        assert_eq!(got.len(), 1, "{dialect}");
        let delivery = &got[0];
        assert_eq!(delivery.headers["content-type"], "application/json");
        let signature = signature_of(delivery);
        assert_eq!(signature, signature.to_lowercase());
        assert_eq!(
            verify_signature(&secret, &delivery.body, &signature),
            Ok(()),
            "{dialect}"
        );

        let body: serde_json::Value = serde_json::from_slice(&delivery.body).unwrap();
        assert_eq!(body["type"], "test");
        assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(body["payload"].is_object());
        assert!(
            body["date"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        let keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4);
    }
}

#[tokio::test]
async fn a_wrong_secret_or_a_changed_body_fails_verification() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let receiver = Receiver::start(vec![]).await;
    let ivy = client(&emu, Dialect::Rest);
    let created = subscribe_and_test(&ivy, &receiver.url("h"), "w").await;
    let secret = created.signing_secret.unwrap();
    let got = receiver.wait_for(1).await;
    let signature = signature_of(&got[0]);
    let body = got[0].body.to_vec();

    assert_eq!(verify_signature(&secret, &body, &signature), Ok(()));
    assert_eq!(
        verify_signature(&SigningSecret::new("whsec_wrong"), &body, &signature),
        Err(SignatureError::Mismatch)
    );
    let mut changed = body.clone();
    let last = changed.len() - 2;
    changed[last] ^= 0x01;
    assert_eq!(
        verify_signature(&secret, &changed, &signature),
        Err(SignatureError::Mismatch)
    );
    // Re-serialised JSON is not the raw body either.
    let reserialised =
        serde_json::to_vec_pretty(&serde_json::from_slice::<serde_json::Value>(&body).unwrap())
            .unwrap();
    assert!(verify_signature(&secret, &reserialised, &signature).is_err());
}

#[tokio::test]
async fn an_admin_event_carries_a_realistic_order() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let receiver = Receiver::start(vec![]).await;
    let created = client(&emu, Dialect::Internal)
        .create(&request(&receiver.url("orders")), &key("o"))
        .await
        .unwrap();
    // Fan-out: every active subscription to order_created.
    let sent = emu.state().send_event("order_created", None, None).unwrap();
    assert_eq!(sent.len(), 1);
    let got = receiver.wait_for(1).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "order_created");
    assert_eq!(body["id"], sent[0].webhook_id);
    let order = &body["payload"];
    for field in [
        "id",
        "merchantId",
        "appId",
        "referenceId",
        "status",
        "price",
        "lineItems",
        "statusHistory",
    ] {
        assert!(!order[field].is_null(), "order.{field}");
    }
    let secret = created.signing_secret.unwrap();
    assert_eq!(
        verify_signature(&secret, &got[0].body, &signature_of(&got[0])),
        Ok(())
    );
    // Not subscribed to payout.paid: nothing is sent.
    assert!(
        emu.state()
            .send_event("payout.paid", None, None)
            .unwrap()
            .is_empty()
    );
    assert!(emu.state().send_event("no_such_event", None, None).is_err());
}

#[tokio::test]
async fn inactive_subscriptions_get_no_fan_out_events() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let receiver = Receiver::start(vec![]).await;
    let mut req = request(&receiver.url("off"));
    req.active = false;
    client(&emu, Dialect::Rest)
        .create(&req, &key("off"))
        .await
        .unwrap();
    assert!(
        emu.state()
            .send_event("order_created", None, None)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_the_schedule_until_a_200() {
    let schedule = vec![
        Duration::from_millis(150),
        Duration::from_millis(300),
        Duration::from_millis(50),
    ];
    let emu = emulator(
        config()
            .plain_http_to_loopback(true)
            .retry_schedule(schedule.clone()),
    )
    .await;
    // 204 is a success status but not a 200: Ivy retries it.
    let receiver = Receiver::start(vec![500, 204, 503]).await;
    let ivy = client(&emu, Dialect::Rest);
    subscribe_and_test(&ivy, &receiver.url("retry"), "r").await;

    let got = receiver.wait_for(4).await;
    assert_eq!(got.len(), 4);
    for (pair, delay) in got.windows(2).zip(&schedule) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= *delay, "gap {gap:?} shorter than {delay:?}");
        assert!(
            gap < *delay + Duration::from_millis(500),
            "gap {gap:?} much longer than {delay:?}"
        );
    }
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "every attempt sends the same body"
    );

    let deliveries = emu
        .state()
        .wait_for_deliveries(Duration::from_secs(3), |d| {
            d.iter().all(|d| d.state != DeliveryState::Pending)
        })
        .await;
    let delivery = &deliveries[0];
    assert_eq!(delivery.state, DeliveryState::Delivered);
    let statuses: Vec<Option<u16>> = delivery.attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(500), Some(204), Some(503), Some(200)]);
}

#[tokio::test]
async fn a_delivery_fails_after_the_last_retry() {
    let emu = emulator(config().plain_http_to_loopback(true)).await; // two 20 ms retries
    let receiver = Receiver::start(vec![500; 10]).await;
    let ivy = client(&emu, Dialect::Rest);
    subscribe_and_test(&ivy, &receiver.url("fail"), "f").await;
    let deliveries = once_one_failed(&emu).await;
    assert_eq!(deliveries[0].state, DeliveryState::Failed);
    assert_eq!(deliveries[0].attempts.len(), 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "no attempt beyond the schedule"
    );
}

#[tokio::test]
async fn an_unreachable_receiver_is_recorded_as_an_error_attempt() {
    let emu = emulator(config().plain_http_to_loopback(true).retry_schedule(vec![])).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let ivy = client(&emu, Dialect::Rest);
    subscribe_and_test(&ivy, &format!("https://127.0.0.1:{port}/h"), "u").await;
    let deliveries = once_one_failed(&emu).await;
    let attempt = &deliveries[0].attempts[0];
    assert_eq!(attempt.status, None);
    assert!(attempt.error.is_some());
}

#[tokio::test]
async fn non_loopback_destinations_are_skipped_never_contacted() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let ivy = client(&emu, Dialect::Rest);
    for (i, url) in [
        "https://shop.example/hook",
        "https://10.1.2.3:8443/hook",
        "https://[::ffff:127.0.0.1]/h",
    ]
    .into_iter()
    .enumerate()
    {
        subscribe_and_test(&ivy, url, &format!("nl{i}")).await;
    }
    let deliveries: Vec<Delivery> = emu.state().deliveries();
    assert_eq!(deliveries.len(), 3);
    for delivery in deliveries {
        assert_eq!(delivery.state, DeliveryState::Skipped, "{}", delivery.url);
        assert_eq!(delivery.attempts.len(), 1);
        assert_eq!(delivery.attempts[0].status, None);
        assert_eq!(
            delivery.attempts[0].error.as_deref(),
            Some("skipped: non-loopback destination")
        );
    }
}

#[tokio::test]
async fn the_service_trigger_endpoint_resends_a_webhook_by_its_id() {
    let emu = emulator(config().plain_http_to_loopback(true)).await;
    let receiver = Receiver::start(vec![]).await;
    let ivy = client(&emu, Dialect::Service);
    subscribe_and_test(&ivy, &receiver.url("svc"), "svc").await;
    let first = receiver.wait_for(1).await;
    let webhook_id = serde_json::from_slice::<serde_json::Value>(&first[0].body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let http = raw();
    let trigger = |id: String| {
        http.post(emu.base_url().join("api/service/webhook/trigger").unwrap())
            .header("X-Ivy-Api-Key", KEY)
            .json(&serde_json::json!({"id": id}))
            .send()
    };
    let response = trigger(webhook_id.clone()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"success": true})
    );
    let both = receiver.wait_for(2).await;
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1].body, both[0].body,
        "the same webhook, byte for byte"
    );
    let app_secret = SigningSecret::new(emu.state().app_signing_secret());
    assert_eq!(
        verify_signature(&app_secret, &both[1].body, &signature_of(&both[1])),
        Ok(())
    );
    let deliveries = emu.state().deliveries();
    assert_eq!(
        deliveries[1].resend_of.as_deref(),
        Some(deliveries[0].delivery_id.as_str())
    );

    assert_eq!(
        trigger("no-such-webhook".into()).await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn https_to_loopback_is_not_downgraded_without_the_switch() {
    let emu = emulator(config().retry_schedule(vec![])).await;
    let receiver = Receiver::start(vec![]).await;
    let ivy = client(&emu, Dialect::Rest);
    subscribe_and_test(&ivy, &receiver.url("tls"), "tls").await;
    let deliveries = once_one_failed(&emu).await;
    assert_eq!(
        deliveries[0].state,
        DeliveryState::Failed,
        "a TLS handshake with a plain server fails"
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn shutdown_cancels_pending_retries() {
    let emu = emulator(
        config()
            .plain_http_to_loopback(true)
            .retry_schedule(vec![Duration::from_millis(200)]),
    )
    .await;
    let receiver = Receiver::start(vec![500, 500]).await;
    let ivy = client(&emu, Dialect::Rest);
    subscribe_and_test(&ivy, &receiver.url("bye"), "bye").await;
    receiver.wait_for(1).await;
    emu.shutdown().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received().len(), 1, "the retry was cancelled");
}
