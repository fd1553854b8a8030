//! The Ivy client against the emulator over real HTTP on 127.0.0.1, for every dialect: the
//! subscription lifecycle, the emulator's rules as the client classifies them, idempotency
//! and injected faults.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "emulator_support.rs"]
mod support;

use std::time::Duration;

use ivy_webhook_operator::emulator::{AfterCommit, FaultSpec};
use ivy_webhook_operator::ivy::error::ConflictKind;
use ivy_webhook_operator::ivy::{Dialect, IvyError, SubscriptionPatch};
use support::*;

#[tokio::test]
async fn the_full_lifecycle_works_in_every_dialect() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        assert_eq!(ivy.dialect(), dialect);
        let url = url("lifecycle");
        let created = ivy
            .create(&request(&url), &key(&format!("c-{dialect}")))
            .await
            .unwrap();
        let id = created.subscription.id.clone();
        assert_eq!(created.subscription.url, url);
        assert_eq!(
            created.subscription.events,
            ["order_created", "refund_succeeded"]
        );

        let got = ivy.get(&id).await.unwrap();
        assert_eq!(got, created.subscription, "{dialect}");

        let patch = SubscriptionPatch {
            events: Some(vec!["test".into()]),
            ..Default::default()
        };
        let updated = ivy
            .update(&id, &patch, &key(&format!("u-{dialect}")))
            .await
            .unwrap();
        assert_eq!(updated.events, ["test"]);
        assert_eq!(updated.url, url, "{dialect}: fields not in the patch stay");
        assert_eq!(ivy.get(&id).await.unwrap().events, ["test"]);

        assert!(ivy.list().await.unwrap().iter().any(|s| s.id == id));
        ivy.trigger_test(&id).await.unwrap();

        ivy.delete(&id, &key(&format!("d-{dialect}")))
            .await
            .unwrap();
        assert!(
            matches!(ivy.get(&id).await, Err(IvyError::NotFound { .. })),
            "{dialect}"
        );
        assert!(matches!(
            ivy.delete(&id, &key(&format!("d2-{dialect}"))).await,
            Err(IvyError::NotFound { .. })
        ));
    }
    assert!(emu.state().subscriptions().is_empty());
}

#[tokio::test]
async fn dialect_features_map_as_documented() {
    let emu = emulator(config()).await;
    let mut inactive = request(&url("features"));
    inactive.active = false;

    let rest = client(&emu, Dialect::Rest)
        .create(&inactive, &key("f-rest"))
        .await
        .unwrap();
    assert_eq!(rest.subscription.active, Some(false));
    assert_eq!(
        rest.subscription.description.as_deref(),
        Some("managed by test")
    );
    assert!(uuid::Uuid::parse_str(&rest.subscription.id).is_ok());
    assert!(rest.signing_secret.unwrap().expose().starts_with("whsec_"));

    inactive.url = url("features");
    let internal = client(&emu, Dialect::Internal)
        .create(&inactive, &key("f-int"))
        .await
        .unwrap();
    assert_eq!(internal.subscription.active, Some(false));
    assert!(internal.subscription.id.starts_with("wsub_"));
    assert!(
        internal
            .signing_secret
            .unwrap()
            .expose()
            .starts_with("whsec_")
    );

    inactive.url = url("features");
    let service_client = client(&emu, Dialect::Service);
    let service = service_client
        .create(&inactive, &key("f-svc"))
        .await
        .unwrap();
    assert!(service.signing_secret.is_none());
    assert_eq!(service.subscription.description, None);
    assert_eq!(service.subscription.active, None);
    let caps = service_client.capabilities();
    assert!(!caps.get && !caps.description && !caps.active_flag && !caps.per_subscription_secret);
    assert!(caps.list && caps.delete && caps.trigger_test);
    let state = emu.state();
    let view = state.subscription(&service.subscription.id).unwrap();
    assert_eq!(view.secret_source, "app");
    assert_eq!(view.signing_secret, state.app_signing_secret());
}

#[tokio::test]
async fn a_subscription_is_visible_through_every_dialect() {
    let emu = emulator(config()).await;
    let created = client(&emu, Dialect::Rest)
        .create(&request(&url("cross")), &key("x1"))
        .await
        .unwrap();
    let view = emu.state().subscription(&created.subscription.id).unwrap();
    assert_eq!(view.created_via, "rest");
    let internal = client(&emu, Dialect::Internal)
        .get(&view.internal_id)
        .await
        .unwrap();
    assert_eq!(internal.url, created.subscription.url);
    let service = client(&emu, Dialect::Service)
        .get(&view.service_id)
        .await
        .unwrap();
    assert_eq!(service.events, created.subscription.events);
    // Ids are dialect-specific: the rest id means nothing to internal.
    let err = client(&emu, Dialect::Internal)
        .get(&view.rest_id)
        .await
        .unwrap_err();
    assert!(matches!(err, IvyError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn list_walks_all_pages_in_every_dialect() {
    let emu = emulator(config()).await;
    let rest = client(&emu, Dialect::Rest);
    for i in 0..205 {
        rest.create(&request(&url(&format!("page{i}"))), &key(&format!("p{i}")))
            .await
            .unwrap();
    }
    let state = emu.state();
    for dialect in Dialect::ALL {
        let all = client(&emu, dialect).list().await.unwrap();
        assert_eq!(all.len(), 205, "{dialect}");
        let mut ids: Vec<_> = all.iter().map(|s| s.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 205, "{dialect}: no duplicates across pages");
    }
    assert_eq!(state.request_count("GET", "/webhook"), 3);
    assert_eq!(
        state.request_count("POST", "/api/service/internal/webhook-subscription/list"),
        3
    );
    assert_eq!(
        state.request_count("POST", "/api/service/webhook-subscription/list"),
        3
    );
}

#[tokio::test]
async fn merchants_see_only_their_own_subscriptions() {
    let emu = emulator(config()).await;
    let mine = client(&emu, Dialect::Rest)
        .create(&request(&url("m")), &key("m1"))
        .await
        .unwrap();
    let other = client_with(&emu, Dialect::Rest, OTHER_KEY, Duration::from_secs(5));
    assert!(other.list().await.unwrap().is_empty());
    assert!(matches!(
        other.get(&mine.subscription.id).await,
        Err(IvyError::NotFound { .. })
    ));
    // The same URL is fine for another merchant.
    other
        .create(&request(&mine.subscription.url), &key("m1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_or_missing_api_key_is_an_auth_error() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client_with(&emu, dialect, "wrong-key", Duration::from_secs(5));
        let err = ivy.list().await.unwrap_err();
        assert!(
            matches!(err, IvyError::Auth { status: 401 }),
            "{dialect}: {err:?}"
        );
        let err = ivy
            .create(&request(&url("auth")), &key("a"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IvyError::Auth { status: 401 }),
            "{dialect}: {err:?}"
        );
        assert!(!err.to_string().contains("wrong-key"));
    }
    let status = raw()
        .get(emu.base_url().join("webhook").unwrap())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(emu.state().subscriptions().is_empty());
}

#[tokio::test]
async fn unknown_ids_are_not_found_in_every_dialect() {
    let emu = emulator(config()).await;
    let ids = [
        (Dialect::Rest, "3f1c0000-0000-4000-8000-000000000001"),
        (Dialect::Internal, "wsub_3f1c0000000040008000000000000001"),
        (Dialect::Service, "3f1c0000000040008000000000000001"),
    ];
    let patch = SubscriptionPatch {
        url: Some(url("nf")),
        ..Default::default()
    };
    for (dialect, id) in ids {
        let ivy = client(&emu, dialect);
        assert!(matches!(ivy.get(id).await, Err(IvyError::NotFound { id: got }) if got == id));
        assert!(
            matches!(
                ivy.update(id, &patch, &key("nf-u")).await,
                Err(IvyError::NotFound { .. })
            ),
            "{dialect}"
        );
        assert!(
            matches!(
                ivy.delete(id, &key("nf-d")).await,
                Err(IvyError::NotFound { .. })
            ),
            "{dialect}"
        );
        assert!(
            matches!(ivy.trigger_test(id).await, Err(IvyError::NotFound { .. })),
            "{dialect}"
        );
    }
}

#[tokio::test]
async fn a_duplicate_url_is_a_conflict_in_every_dialect() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        let url = url("dup");
        ivy.create(&request(&url), &key(&format!("dup1-{dialect}")))
            .await
            .unwrap();
        let err = ivy
            .create(&request(&url), &key(&format!("dup2-{dialect}")))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
        // Moving another subscription onto the URL is a conflict too.
        let second = ivy
            .create(&request(&url_2(&url)), &key(&format!("dup3-{dialect}")))
            .await
            .unwrap();
        let patch = SubscriptionPatch {
            url: Some(url.clone()),
            ..Default::default()
        };
        let err = ivy
            .update(
                &second.subscription.id,
                &patch,
                &key(&format!("dup4-{dialect}")),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
    }
}

fn url_2(url: &str) -> String {
    format!("{url}-2")
}

#[tokio::test]
async fn only_https_urls_are_accepted() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        for bad in [
            "http://shop.example/h",
            "http://127.0.0.1:9/h",
            "ftp://shop.example/",
            "nonsense",
        ] {
            let err = ivy
                .create(&request(bad), &key(&format!("h-{dialect}-{bad}")))
                .await
                .unwrap_err();
            match err {
                IvyError::Validation { message, code } => {
                    assert!(!message.is_empty());
                    assert!(code.unwrap().contains("url"), "{dialect}");
                }
                other => panic!("{dialect} {bad}: {other:?}"),
            }
        }
    }
    assert!(emu.state().subscriptions().is_empty());
    // The seed's own error code for the internal dialect.
    let err = client(&emu, Dialect::Internal)
        .create(&request("http://shop.example/h"), &key("seed"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, IvyError::Validation { code: Some(c), .. } if c == "invalid_endpoint_url")
    );
}

#[tokio::test]
async fn allow_http_urls_admits_plain_http_to_loopback_only() {
    let emu = emulator(config().allow_http_urls(true)).await;
    let ivy = client(&emu, Dialect::Rest);
    ivy.create(&request("http://127.0.0.1:9/h"), &key("ok"))
        .await
        .unwrap();
    let err = ivy
        .create(&request("http://shop.example/h"), &key("no"))
        .await
        .unwrap_err();
    assert!(matches!(err, IvyError::Validation { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_events_are_a_validation_error() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        let mut req = request(&url("ev"));
        req.events = vec!["order_created".into(), "order.exploded".into()];
        let err = ivy
            .create(&req, &key(&format!("ev-{dialect}")))
            .await
            .unwrap_err();
        match err {
            IvyError::Validation { message, code } => {
                assert!(message.contains("order.exploded"), "{dialect}: {message}");
                assert!(code.unwrap().contains("event"), "{dialect}");
            }
            other => panic!("{dialect}: {other:?}"),
        }
        req.events = vec![];
        assert!(matches!(
            ivy.create(&req, &key(&format!("ev0-{dialect}"))).await,
            Err(IvyError::Validation { .. })
        ));
    }
    // Every catalogue style is accepted.
    let mut req = request(&url("ev-ok"));
    req.events = vec![
        "user_payout.paid".into(),
        "checkout_session.completed".into(),
        "fx.failed".into(),
        "test".into(),
    ];
    client(&emu, Dialect::Rest)
        .create(&req, &key("ev-ok"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_secret_is_returned_only_by_create() {
    let emu = emulator(config()).await;
    let http = raw();
    let base = emu.base_url();
    for dialect in [Dialect::Rest, Dialect::Internal] {
        let ivy = client(&emu, dialect);
        let created = ivy
            .create(&request(&url("once")), &key(&format!("s-{dialect}")))
            .await
            .unwrap();
        let secret = created.signing_secret.unwrap().expose().to_owned();
        let view = emu.state().subscription(&created.subscription.id).unwrap();
        assert_eq!(view.signing_secret, secret);
        let answers = match dialect {
            Dialect::Rest => vec![
                http.get(base.join(&format!("webhook/{}", view.rest_id)).unwrap()),
                http.get(base.join("webhook").unwrap()),
                http.put(base.join(&format!("webhook/{}", view.rest_id)).unwrap())
                    .json(&serde_json::json!({"description": "x"})),
            ],
            _ => vec![
                http.post(
                    base.join("api/service/internal/webhook-subscription/get")
                        .unwrap(),
                )
                .json(&serde_json::json!({"subscription_id": view.internal_id})),
                http.post(
                    base.join("api/service/internal/webhook-subscription/list")
                        .unwrap(),
                )
                .json(&serde_json::json!({})),
                http.post(
                    base.join("api/service/internal/webhook-subscription/update")
                        .unwrap(),
                )
                .json(
                    &serde_json::json!({"subscription_id": view.internal_id, "description": "x"}),
                ),
            ],
        };
        for answer in answers {
            let response = answer.header("X-Ivy-Api-Key", KEY).send().await.unwrap();
            assert!(response.status().is_success());
            let text = response.text().await.unwrap();
            assert!(!text.contains(&secret), "{dialect}: {text}");
            assert!(!text.contains("secret"), "{dialect}: {text}");
        }
    }
    // service: not even create carries a secret.
    let response = http
        .post(
            base.join("api/service/webhook-subscription/create")
                .unwrap(),
        )
        .header("X-Ivy-Api-Key", KEY)
        .json(&serde_json::json!({"url": url("svc"), "events": ["test"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.text().await.unwrap().contains("secret"));
}

#[tokio::test]
async fn a_replayed_create_returns_the_same_id_and_secret() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        let req = request(&url("idem"));
        let k = key(&format!("same-{dialect}"));
        let first = ivy.create(&req, &k).await.unwrap();
        let second = ivy.create(&req, &k).await.unwrap();
        assert_eq!(first.subscription.id, second.subscription.id, "{dialect}");
        assert_eq!(
            first.signing_secret.as_ref().map(|s| s.expose().to_owned()),
            second
                .signing_secret
                .as_ref()
                .map(|s| s.expose().to_owned()),
        );
        let mut changed = req.clone();
        changed.events = vec!["test".into()];
        let err = ivy.create(&changed, &k).await.unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Conflict {
                    kind: ConflictKind::IdempotencyKeyReused,
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
    }
    assert_eq!(emu.state().subscriptions().len(), 3);
}

#[tokio::test]
async fn a_replay_is_byte_for_byte_and_keys_are_per_merchant() {
    let emu = emulator(config()).await;
    let http = raw();
    let create = |api_key: &'static str, url: String| {
        http.post(emu.base_url().join("webhook").unwrap())
            .header("X-Ivy-Api-Key", api_key)
            .header("Idempotency-Key", "shared-key")
            .json(&serde_json::json!({"url": url, "events": ["test"]}))
    };
    let url = url("bytes");
    let first = create(KEY, url.clone()).send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first_body = first.bytes().await.unwrap();
    let replay = create(KEY, url.clone()).send().await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), first_body);
    // The same key under another API key is a fresh request.
    let other = create(OTHER_KEY, url).send().await.unwrap();
    assert_eq!(other.status(), 201);
    assert_ne!(other.bytes().await.unwrap(), first_body);
    assert_eq!(emu.state().subscriptions().len(), 2);
}

#[tokio::test]
async fn a_refused_request_does_not_use_up_its_key() {
    let emu = emulator(config()).await;
    let ivy = client(&emu, Dialect::Rest);
    let k = key("fix-and-retry");
    let err = ivy
        .create(&request("http://shop.example/"), &k)
        .await
        .unwrap_err();
    assert!(matches!(err, IvyError::Validation { .. }));
    ivy.create(&request(&url("fixed")), &k).await.unwrap();
}

#[tokio::test]
async fn without_idempotency_support_a_retried_create_is_not_replayed() {
    let emu = emulator(config().idempotency(false)).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        let req = request(&url("noidem"));
        let k = key(&format!("k-{dialect}"));
        ivy.create(&req, &k).await.unwrap();
        let err = ivy.create(&req, &k).await.unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
        // Different URL, same key: a second subscription, no idempotency conflict.
        let other = ivy.create(&request(&url("noidem")), &k).await.unwrap();
        assert!(emu.state().subscription(&other.subscription.id).is_some());
    }
    assert_eq!(emu.state().subscriptions().len(), 6);

    // And it can be switched back on at runtime.
    emu.state().set_idempotency(true);
    let ivy = client(&emu, Dialect::Rest);
    let req = request(&url("on-again"));
    let a = ivy.create(&req, &key("again")).await.unwrap();
    let b = ivy.create(&req, &key("again")).await.unwrap();
    assert_eq!(a.subscription.id, b.subscription.id);
}

#[tokio::test]
async fn a_rate_limit_surfaces_with_its_retry_after() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        emu.state()
            .add_fault(FaultSpec::rate_limit(Some(7)).on_dialect(dialect).times(1));
        let ivy = client(&emu, dialect);
        let err = ivy.list().await.unwrap_err();
        assert!(
            matches!(err, IvyError::RateLimited { .. }),
            "{dialect}: {err:?}"
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        // count=1: the next call goes through.
        ivy.list().await.unwrap();
    }
    emu.state().add_fault(FaultSpec::rate_limit(None).times(1));
    let err = client(&emu, Dialect::Rest).list().await.unwrap_err();
    assert!(matches!(err, IvyError::RateLimited { retry_after: None }));
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_transient() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        emu.state().add_fault(FaultSpec::status(503).times(1));
        let err = ivy
            .create(&request(&url("5xx")), &key(&format!("5-{dialect}")))
            .await
            .unwrap_err();
        assert!(
            matches!(err, IvyError::Transient { .. }),
            "{dialect}: {err:?}"
        );
        emu.state().add_fault(FaultSpec::drop_connection().times(1));
        let err = ivy.list().await.unwrap_err();
        assert!(
            matches!(err, IvyError::Transient { .. }),
            "{dialect}: {err:?}"
        );
    }
    // Faults that fire before the handler change nothing.
    assert!(emu.state().subscriptions().is_empty());
}

#[tokio::test]
async fn latency_beyond_the_request_timeout_is_transient() {
    let emu = emulator(config()).await;
    emu.state()
        .add_fault(FaultSpec::latency(Duration::from_millis(600)).times(1));
    let ivy = client_with(&emu, Dialect::Rest, KEY, Duration::from_millis(200));
    let err = ivy.list().await.unwrap_err();
    assert!(matches!(err, IvyError::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn a_malformed_success_body_is_a_malformed_response() {
    let emu = emulator(config()).await;
    for dialect in Dialect::ALL {
        let ivy = client(&emu, dialect);
        emu.state()
            .add_fault(FaultSpec::malformed_body().on_dialect(dialect).times(1));
        let err = ivy.list().await.unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::MalformedResponse {
                    operation: "list",
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
        let mut empty = FaultSpec::malformed_body().on_dialect(dialect).times(1);
        empty.body = Some(String::new());
        emu.state().add_fault(empty);
        let err = ivy
            .create(&request(&url("mal")), &key(&format!("m-{dialect}")))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::MalformedResponse {
                    operation: "create",
                    ..
                }
            ),
            "{dialect}: {err:?}"
        );
    }
}

#[tokio::test]
async fn after_a_failure_after_commit_the_same_key_recovers_id_and_secret() {
    let emu = emulator(config()).await;
    for (dialect, then) in [
        (Dialect::Rest, AfterCommit::Status),
        (Dialect::Internal, AfterCommit::Drop),
        (Dialect::Service, AfterCommit::Status),
        (Dialect::Rest, AfterCommit::Drop),
    ] {
        let ivy = client(&emu, dialect);
        let req = request(&url("commit"));
        let k = key(&format!("commit-{dialect}-{then:?}"));
        let before = emu.state().subscriptions().len();
        emu.state().add_fault(
            FaultSpec::fail_after_commit(then)
                .on_method("POST")
                .times(1),
        );
        let err = ivy.create(&req, &k).await.unwrap_err();
        assert!(
            matches!(err, IvyError::Transient { .. }),
            "{dialect}: {err:?}"
        );
        let after = emu.state().subscriptions();
        assert_eq!(
            after.len(),
            before + 1,
            "{dialect}: the create was committed"
        );
        let committed = after.last().unwrap().clone();

        let retried = ivy.create(&req, &k).await.unwrap();
        assert_eq!(retried.subscription.id, committed.id_for(dialect));
        if let Some(secret) = retried.signing_secret {
            assert_eq!(secret.expose(), committed.signing_secret);
        }
        assert_eq!(
            emu.state().subscriptions().len(),
            before + 1,
            "{dialect}: no duplicate"
        );
    }
}

trait IdFor {
    fn id_for(&self, dialect: Dialect) -> String;
}

impl IdFor for ivy_webhook_operator::emulator::SubscriptionView {
    fn id_for(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Rest => self.rest_id.clone(),
            Dialect::Internal => self.internal_id.clone(),
            Dialect::Service => self.service_id.clone(),
        }
    }
}

#[tokio::test]
async fn internal_verbs_missing_on_the_server_degrade_to_unsupported() {
    // A stand-in for a real Ivy that has only the documented create/update: every other
    // internal route is a bare 404, as the emulator answers unknown routes.
    let emu = emulator(config()).await;
    let mut base = emu.base_url();
    base.set_path("/nowhere/");
    let mut cfg = ivy_webhook_operator::ivy::ClientConfig::new(
        base,
        ivy_webhook_operator::ivy::ApiKey::new(KEY),
        Dialect::Internal,
    );
    cfg.request_timeout = Duration::from_secs(5);
    let http =
        ivy_webhook_operator::ivy::http_client(Duration::from_secs(2), Duration::from_secs(5))
            .unwrap();
    let ivy = ivy_webhook_operator::ivy::build_ivy_client(cfg, http);
    assert!(matches!(
        ivy.list().await,
        Err(IvyError::Unsupported {
            operation: "list",
            ..
        })
    ));
    assert!(matches!(
        ivy.get("wsub_x").await,
        Err(IvyError::Unsupported {
            operation: "get",
            ..
        })
    ));
    assert!(matches!(
        ivy.delete("wsub_x", &key("d")).await,
        Err(IvyError::Unsupported { .. })
    ));
    assert!(matches!(
        ivy.trigger_test("wsub_x").await,
        Err(IvyError::Unsupported { .. })
    ));
    let caps = ivy.capabilities();
    assert!(!caps.get && !caps.list && !caps.delete && !caps.trigger_test);
    // A documented verb missing is not "unsupported": it is an unexpected 404.
    assert!(matches!(
        ivy.create(&request(&url("x")), &key("c")).await,
        Err(IvyError::UnexpectedStatus { status: 404, .. })
    ));
}

#[tokio::test]
async fn a_key_rotated_in_its_file_is_used_without_a_restart() {
    use ivy_webhook_operator::ivy::{ApiKey, ClientConfig, build_ivy_client, http_client};
    let emu = emulator(config()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-key");
    std::fs::write(&file, format!("{KEY}\n")).unwrap();
    let mut config = ClientConfig::new(emu.base_url(), ApiKey::new(KEY), Dialect::Rest);
    config.api_key_file = Some(file.clone());
    let http = http_client(Duration::from_secs(2), Duration::from_secs(10)).unwrap();
    let ivy = build_ivy_client(config, http);
    assert!(ivy.list().await.is_ok());

    // Replaced the way the kubelet updates a mounted Secret: a new file renamed into place.
    let replace = |content: &str| {
        let tmp = dir.path().join(".api-key.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    };
    replace("revoked-key");
    assert!(
        matches!(ivy.list().await, Err(IvyError::Auth { .. })),
        "the new (wrong) key was not used"
    );
    replace(OTHER_KEY);
    assert!(
        ivy.list().await.is_ok(),
        "the rotated key was not picked up"
    );
    replace("   \n");
    assert!(ivy.list().await.is_ok(), "an empty file keeps the last key");
}
