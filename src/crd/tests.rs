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
