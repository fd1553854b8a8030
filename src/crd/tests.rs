//! Schema and CEL rules of the CRD, checked client-side with kube's CEL evaluator (the end-to-end
//! suite checks the same rules on a real kube-apiserver).

use super::*;
use kube::core::ObjectMeta;

fn sub(spec: WebhookSubscriptionSpec) -> WebhookSubscription {
    let mut sub = WebhookSubscription::new("orders", spec);
    sub.metadata = ObjectMeta {
        name: Some("orders".into()),
        namespace: Some("shop".into()),
        ..ObjectMeta::default()
    };
    sub
}

fn spec() -> WebhookSubscriptionSpec {
    WebhookSubscriptionSpec {
        account_ref: None,
        url: "https://shop.example.com/webhooks/ivy".into(),
        events: vec![EventName::OrderCreated, EventName::RefundSucceeded],
        description: Some("Production order notifications".into()),
        active: true,
        secret_name: None,
        deletion_policy: DeletionPolicy::Delete,
        secret_template: None,
        restart_on_rotation: Vec::new(),
        rotation: None,
    }
}

fn cel_errors(sub: &WebhookSubscription) -> String {
    match sub.validate_cel() {
        Ok(()) => String::new(),
        Err(errors) => format!("{errors:?}"),
    }
}

#[test]
fn a_valid_spec_passes_every_rule() {
    assert_eq!(cel_errors(&sub(spec())), "");
}

#[test]
fn http_url_is_refused() {
    let errors = cel_errors(&sub(WebhookSubscriptionSpec {
        url: "http://shop.example.com/hook".into(),
        ..spec()
    }));
    assert!(errors.contains("https://"), "{errors}");
}

#[test]
fn text_that_is_not_a_url_is_refused() {
    let errors = cel_errors(&sub(WebhookSubscriptionSpec {
        url: "https is not a url".into(),
        ..spec()
    }));
    assert!(errors.contains("https://"), "{errors}");
}

#[test]
fn secret_name_cannot_change() {
    let old = sub(WebhookSubscriptionSpec {
        secret_name: Some("a".into()),
        ..spec()
    });
    let new = sub(WebhookSubscriptionSpec {
        secret_name: Some("b".into()),
        ..spec()
    });
    let errors = format!("{:?}", new.validate_cel_update(&old));
    assert!(errors.contains("immutable"), "{errors}");
}

#[test]
fn secret_name_cannot_be_added_later() {
    let old = sub(spec());
    let new = sub(WebhookSubscriptionSpec {
        secret_name: Some("b".into()),
        ..spec()
    });
    assert!(new.validate_cel_update(&old).is_err());
}

#[test]
fn unchanged_secret_name_is_accepted_on_update() {
    let old = sub(WebhookSubscriptionSpec {
        secret_name: Some("a".into()),
        ..spec()
    });
    let mut new = old.clone();
    new.spec.description = Some("changed".into());
    assert!(new.validate_cel_update(&old).is_ok());
}

#[test]
fn default_secret_name_derives_from_the_resource_name() {
    assert_eq!(sub(spec()).secret_name(), "orders-ivy-webhook");
    let named = sub(WebhookSubscriptionSpec {
        secret_name: Some("custom".into()),
        ..spec()
    });
    assert_eq!(named.secret_name(), "custom");
}

#[test]
fn omitted_active_and_policy_take_their_defaults() {
    let parsed: WebhookSubscriptionSpec = serde_json::from_value(serde_json::json!({
        "url": "https://a.example/h",
        "events": ["test"],
    }))
    .unwrap();
    assert!(parsed.active);
    assert_eq!(parsed.deletion_policy, DeletionPolicy::Delete);
}

#[test]
fn schema_declares_events_as_a_set_of_known_names() {
    let crd = serde_json::to_value(WebhookSubscription::crd()).unwrap();
    let events = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["events"];
    assert_eq!(events["x-kubernetes-list-type"], "set");
    assert_eq!(events["minItems"], 1);
    let allowed = events["items"]["enum"].as_array().unwrap();
    assert_eq!(allowed.len(), EventName::ALL.len());
    assert!(allowed.contains(&serde_json::json!("user_payout.failed")));
}

#[test]
fn crd_has_short_name_status_and_printer_columns() {
    let crd = WebhookSubscription::crd();
    assert_eq!(crd.spec.names.short_names, Some(vec!["ivywh".to_string()]));
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Reason",
            "URL",
            "Subscription",
            "Secret",
            "Rotated",
            "Message",
            "Age"
        ]
    );
}

#[test]
fn committed_crd_file_is_up_to_date() {
    let committed = include_str!("../../crds/webhooksubscriptions.webhooks.ivy.dev.yaml");
    assert_eq!(
        committed,
        crd_yaml().unwrap(),
        "crds/ is stale: run `make crd`"
    );
}

fn with_rotation_every(every: &str) -> WebhookSubscription {
    sub(WebhookSubscriptionSpec {
        rotation: Some(RotationSpec {
            every: every.into(),
        }),
        ..spec()
    })
}

#[test]
fn rotation_intervals_of_a_minute_or_more_are_accepted() {
    for every in ["1m", "90d", "2160h", "36h30m", "1h0m30s"] {
        assert_eq!(cel_errors(&with_rotation_every(every)), "", "{every}");
    }
}

#[test]
fn rotation_intervals_under_a_minute_are_refused() {
    let errors = cel_errors(&with_rotation_every("59s"));
    assert!(errors.contains("at least 1m"), "{errors}");
}

fn spec_property(path: &[&str]) -> serde_json::Value {
    let crd = serde_json::to_value(WebhookSubscription::crd()).unwrap();
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    for key in path {
        node = &node["properties"][key];
    }
    node.clone()
}

#[test]
fn schema_bounds_the_interval_text_so_the_api_server_can_cost_its_rule() {
    let every = spec_property(&["rotation", "every"]);
    assert_eq!(every["maxLength"], 32);
    assert_eq!(
        every["pattern"],
        "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
    );
    assert!(every["x-kubernetes-validations"].is_array(), "{every}");
}

#[test]
fn restart_targets_are_a_map_keyed_by_kind_and_name_of_three_workload_kinds() {
    let targets = spec_property(&["restartOnRotation"]);
    assert_eq!(targets["x-kubernetes-list-type"], "map");
    assert_eq!(
        targets["x-kubernetes-list-map-keys"],
        serde_json::json!(["kind", "name"])
    );
    assert_eq!(targets["maxItems"], MAX_RESTART_TARGETS);
    assert_eq!(
        targets["items"]["properties"]["kind"]["enum"],
        serde_json::json!(["Deployment", "StatefulSet", "DaemonSet"])
    );
}

#[test]
fn receiver_fields_are_optional_and_read_in_camel_case() {
    let parsed: WebhookSubscriptionSpec = serde_json::from_value(serde_json::json!({
        "url": "https://a.example/h",
        "events": ["test"],
        "secretTemplate": {"labels": {"team": "shop"}, "annotations": {"reloader.stakater.com/match": "true"}},
        "restartOnRotation": [{"kind": "StatefulSet", "name": "receiver"}],
        "rotation": {"every": "90d"},
    }))
    .unwrap();
    let template = parsed.secret_template.unwrap();
    assert_eq!(template.labels["team"], "shop");
    assert_eq!(template.annotations["reloader.stakater.com/match"], "true");
    assert_eq!(
        parsed.restart_on_rotation[0].kind,
        WorkloadKind::StatefulSet
    );
    assert_eq!(parsed.rotation.unwrap().every, "90d");
    let bare: WebhookSubscriptionSpec = serde_json::from_value(serde_json::json!({
        "url": "https://a.example/h",
        "events": ["test"],
    }))
    .unwrap();
    assert_eq!(bare.secret_template, None);
    assert!(bare.restart_on_rotation.is_empty());
}
