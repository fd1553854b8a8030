//! The `service` dialect (the API Ivy's current SDKs call):
//! `POST /api/service/webhook-subscription/{create,update,list,delete,ping}`, camelCase fields,
//! errors as `{message, category, code, param?, docUrl?}` (read for people only).
//!
//! Lists are `{items, count, hasNext, skip}` (also read: `data`, a bare array); `hasNext` says
//! whether there is more, else `count` does, and an envelope with neither is the whole list.
//! Ids may come as strings or numbers.
//!
//! It has no `get` (a get scans `list`), no description, no active flag and no
//! per-subscription secret: the signing secret belongs to the merchant app, so a create returns
//! `signing_secret: None` and the operator takes the app's secret from its configuration.

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::verbs::{self, ListPage, PAGE_SIZE};
use crate::ivy::api::{Capabilities, IvyApi};
use crate::ivy::dialect::Dialect;
use crate::ivy::error::IvyError;
use crate::ivy::http::Transport;
use crate::ivy::http::classify::{Classify, ErrorBody, Route, Verb};
use crate::ivy::http::decode::{self, decode, decode_list, json_value, says_false, str_field};
use crate::ivy::http::transport::{Call, RawResponse};
use crate::ivy::types::{
    CreatedSubscription, IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

const PREFIX: [&str; 3] = ["api", "service", "webhook-subscription"];

#[derive(Serialize)]
struct CreateBody<'a> {
    url: &'a str,
    events: &'a [String],
}

#[derive(Serialize)]
struct UpdateBody<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [String]>,
}

#[derive(Serialize)]
struct ById<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct ListBody {
    limit: usize,
    skip: usize,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(deserialize_with = "decode::id")]
    id: String,
    url: String,
    events: Vec<String>,
}

impl From<Subscription> for RemoteSubscription {
    fn from(s: Subscription) -> Self {
        RemoteSubscription {
            id: s.id,
            url: s.url,
            events: s.events,
            description: None,
            active: None,
        }
    }
}

/// `{message, category, code, param?, docUrl?}`.
fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let value = json_value(body)?;
    let message = str_field(&value, "message");
    let code = str_field(&value, "code");
    let category = str_field(&value, "category");
    if message.is_none() && code.is_none() && category.is_none() {
        return None;
    }
    Some(ErrorBody {
        message,
        code,
        kind: category,
    })
}

/// The `service` dialect client.
pub struct ServiceClient {
    transport: Transport,
}

impl ServiceClient {
    pub(crate) fn new(transport: Transport) -> Self {
        Self { transport }
    }

    async fn post(
        &self,
        verb: Verb,
        id: &str,
        body: impl Serialize,
        key: Option<&IdempotencyKey>,
    ) -> Result<RawResponse, IvyError> {
        let segments = [PREFIX[0], PREFIX[1], PREFIX[2], path(verb)];
        let mut call = Call::new(Method::POST, &segments).json(body)?;
        if let Some(key) = key {
            call = call.idempotency_key(key);
        }
        let how = Classify {
            dialect: Dialect::Service,
            verb,
            id,
            // Every route is the one Ivy's SDKs call.
            route: Route::Documented,
            parse_error,
        };
        self.transport.exchange(call, &how).await
    }

    /// One page of `list`: `hasNext` says whether more follow, else `count` (the total) does,
    /// else this is the whole list.
    async fn page(&self, skip: usize) -> Result<ListPage<()>, IvyError> {
        let body = ListBody {
            limit: PAGE_SIZE,
            skip,
        };
        let response = self.post(Verb::List, "", body, None).await?;
        let page = decode_list::<Subscription>("list", &response, &["items", "data"])?;
        let got = page.items.len();
        let more = got > 0
            && match (
                page.flag(&["hasNext", "has_next"]),
                page.count(&["count", "total"]),
            ) {
                (Some(has_next), _) => has_next,
                (None, Some(count)) => skip + got < count,
                (None, None) => false,
            };
        Ok(ListPage {
            items: page
                .items
                .into_iter()
                .map(RemoteSubscription::from)
                .collect(),
            next: more.then_some(()),
        })
    }

    fn expect_success(
        operation: &'static str,
        id: &str,
        response: &RawResponse,
    ) -> Result<(), IvyError> {
        // The status decides, unless the body says `success: false`.
        if says_false(response, "success") {
            Err(IvyError::Transient {
                message: format!("Ivy answered success=false to {operation} {id}"),
            })
        } else {
            Ok(())
        }
    }
}

/// The last path segment of `verb`'s route.
fn path(verb: Verb) -> &'static str {
    match verb {
        Verb::Create => "create",
        // No get route: `get` scans the list and never sends this.
        Verb::Get => "get",
        Verb::Update => "update",
        Verb::Delete => "delete",
        Verb::List => "list",
        Verb::TriggerTest => "ping",
    }
}

#[async_trait]
impl IvyApi for ServiceClient {
    fn dialect(&self) -> Dialect {
        Dialect::Service
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            get: false,
            list: true,
            delete: true,
            description: false,
            active_flag: false,
            per_subscription_secret: false,
            trigger_test: true,
        }
    }

    async fn create(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        // description and active have no field in this dialect (see capabilities()).
        let body = CreateBody {
            url: &request.url,
            events: &request.events,
        };
        let response = self.post(Verb::Create, "", body, Some(key)).await?;
        let created: Subscription = decode("create", &response)?;
        Ok(CreatedSubscription {
            subscription: created.into(),
            signing_secret: None,
        })
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        verbs::scan_list(self, id).await
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        if patch.url.is_none() && patch.events.is_none() {
            // Nothing this dialect can change; answer with what Ivy holds.
            return self.get(id).await;
        }
        let body = UpdateBody {
            id,
            url: patch.url.as_deref(),
            events: patch.events.as_deref(),
        };
        let response = self.post(Verb::Update, id, body, Some(key)).await?;
        Ok(decode::<Subscription>("update", &response)?.into())
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        let response = self.post(Verb::Delete, id, ById { id }, Some(key)).await?;
        Self::expect_success("delete", id, &response)
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        verbs::collect_pages(|skip, _| self.page(skip)).await
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        self.post(Verb::TriggerTest, id, ById { id }, None)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivy::error::ConflictKind;
    use crate::ivy::http::test_support::*;

    fn client(stub: &Stub) -> ServiceClient {
        ServiceClient::new(transport(stub.addr))
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::new("idem-3").unwrap()
    }

    const SUB: &str = r#"{"id":"65a4c0ffee","merchant":"m1","merchantApp":"app1",
        "url":"https://shop.example/hook","events":["order_created"],
        "createdAt":"2024-01-15T10:30:00Z","updatedAt":"2024-01-15T10:30:00Z"}"#;

    fn request() -> SubscriptionRequest {
        SubscriptionRequest {
            url: "https://shop.example/hook".into(),
            events: vec!["order_created".into()],
            description: Some("dropped".into()),
            active: false,
        }
    }

    #[tokio::test]
    async fn create_sends_url_and_events_only_and_has_no_secret() {
        let stub = stub(vec![answer(200, SUB)]).await;
        let created = client(&stub).create(&request(), &key()).await.unwrap();
        assert!(created.signing_secret.is_none());
        assert_eq!(created.subscription.id, "65a4c0ffee");
        assert_eq!(created.subscription.description, None);
        assert_eq!(created.subscription.active, None);
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.path_and_query,
            "/api/service/webhook-subscription/create"
        );
        assert_eq!(
            seen.body,
            br#"{"url":"https://shop.example/hook","events":["order_created"]}"#
        );
        assert_eq!(seen.headers["idempotency-key"], "idem-3");
    }

    #[tokio::test]
    async fn get_scans_the_list_pages() {
        let other = SUB.replace("65a4c0ffee", "other");
        let first = format!(r#"{{"items":[{other}],"count":2,"hasNext":true,"skip":0}}"#);
        let second = format!(r#"{{"items":[{SUB}],"count":2,"hasNext":false,"skip":1}}"#);
        let stub = stub(vec![answer(200, &first), answer(200, &second)]).await;
        let found = client(&stub).get("65a4c0ffee").await.unwrap();
        assert_eq!(found.events, vec!["order_created".to_owned()]);
        let seen = stub.seen.lock().unwrap().clone();
        assert_eq!(seen[0].body, br#"{"limit":100,"skip":0}"#);
        assert_eq!(seen[1].body, br#"{"limit":100,"skip":1}"#);
    }

    #[tokio::test]
    async fn get_of_an_absent_id_is_not_found() {
        let page = r#"{"items":[],"count":0,"hasNext":false,"skip":0}"#;
        let stub = stub(vec![answer(200, page)]).await;
        let err = client(&stub).get("nope").await.unwrap_err();
        assert!(matches!(err, IvyError::NotFound { id } if id == "nope"));
    }

    #[tokio::test]
    async fn an_update_without_url_or_events_sends_nothing_to_update() {
        let page = format!(r#"{{"items":[{SUB}],"count":1,"hasNext":false,"skip":0}}"#);
        let stub = stub(vec![answer(200, &page)]).await;
        let patch = SubscriptionPatch {
            description: Some("x".into()),
            ..Default::default()
        };
        client(&stub)
            .update("65a4c0ffee", &patch, &key())
            .await
            .unwrap();
        let seen = stub.seen.lock().unwrap().clone();
        assert!(seen.iter().all(|s| s.path_and_query.ends_with("/list")));
    }

    #[tokio::test]
    async fn delete_checks_success() {
        let stub = stub(vec![
            answer(200, r#"{"success":true}"#),
            answer(200, r#"{"success":false}"#),
        ])
        .await;
        let c = client(&stub);
        c.delete("a", &key()).await.unwrap();
        assert!(matches!(
            c.delete("a", &key()).await,
            Err(IvyError::Transient { .. })
        ));
        assert_eq!(stub.seen.lock().unwrap()[0].body, br#"{"id":"a"}"#);
    }

    #[tokio::test]
    async fn without_has_next_the_count_decides_and_without_either_it_is_one_page() {
        let other = SUB.replace("65a4c0ffee", "other");
        let counted = vec![
            answer(200, &format!(r#"{{"items":[{other}],"count":2}}"#)),
            answer(200, &format!(r#"{{"items":[{SUB}],"count":2}}"#)),
        ];
        let stub_counted = stub(counted).await;
        assert_eq!(client(&stub_counted).list().await.unwrap().len(), 2);
        let seen = stub_counted.seen.lock().unwrap().clone();
        assert_eq!(seen[1].body, br#"{"limit":100,"skip":1}"#);

        let stub_bare = stub(vec![answer(200, &format!(r#"{{"items":[{SUB}]}}"#))]).await;
        assert_eq!(client(&stub_bare).list().await.unwrap().len(), 1);
        assert_eq!(stub_bare.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_numeric_id_in_a_create_answer_is_read_as_a_string() {
        let body = SUB.replace(r#""65a4c0ffee""#, "42");
        let stub = stub(vec![answer(200, &body)]).await;
        let created = client(&stub).create(&request(), &key()).await.unwrap();
        assert_eq!(created.subscription.id, "42");
    }

    #[tokio::test]
    async fn a_2xx_to_delete_without_the_success_field_is_done() {
        let stub = stub(vec![answer(200, ""), answer(200, "{}")]).await;
        let c = client(&stub);
        c.delete("a", &key()).await.unwrap();
        c.delete("a", &key()).await.unwrap();
    }

    #[tokio::test]
    async fn error_bodies_are_read_by_category_and_code() {
        let dup = r#"{"message":"url already used","category":"invalid_request_error","code":"duplicate_url"}"#;
        let idem = r#"{"message":"key reused","category":"idempotency_error","code":"idempotency_key_reused"}"#;
        let bad = r#"{"message":"unknown event","category":"invalid_request_error","code":"invalid_events","param":"events"}"#;
        let stub = stub(vec![answer(409, dup), answer(409, idem), answer(400, bad)]).await;
        let c = client(&stub);
        let a = c.create(&request(), &key()).await.unwrap_err();
        let b = c.create(&request(), &key()).await.unwrap_err();
        let v = c.create(&request(), &key()).await.unwrap_err();
        assert!(
            matches!(
                a,
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    ..
                }
            ),
            "{a:?}"
        );
        assert!(
            matches!(
                b,
                IvyError::Conflict {
                    kind: ConflictKind::IdempotencyKeyReused,
                    ..
                }
            ),
            "{b:?}"
        );
        assert!(matches!(v, IvyError::Validation { code: Some(c), .. } if c == "invalid_events"));
    }

    #[tokio::test]
    async fn a_409_with_another_servers_wording_is_a_duplicate_url() {
        let body = r#"{"message":"Webhook subscription with this url already exists","category":"invalid_request_error","code":"E11000"}"#;
        let stub = stub(vec![answer(409, body)]).await;
        let err = client(&stub).create(&request(), &key()).await.unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Conflict {
                    kind: ConflictKind::DuplicateUrl,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_404_on_update_is_not_found() {
        let stub = stub(vec![answer(404, "")]).await;
        let patch = SubscriptionPatch {
            url: Some("https://a.example/".into()),
            ..Default::default()
        };
        let err = client(&stub)
            .update("gone", &patch, &key())
            .await
            .unwrap_err();
        assert!(matches!(err, IvyError::NotFound { id } if id == "gone"));
    }

    #[tokio::test]
    async fn ping_posts_the_id() {
        let stub = stub(vec![answer(200, r#"{"success":true}"#)]).await;
        client(&stub).trigger_test("abc").await.unwrap();
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.path_and_query,
            "/api/service/webhook-subscription/ping"
        );
        assert_eq!(seen.body, br#"{"id":"abc"}"#);
    }

    #[tokio::test]
    async fn a_truncated_list_body_is_malformed() {
        let stub = stub(vec![answer(200, r#"{"items":[{"id":"#)]).await;
        let err = client(&stub).list().await.unwrap_err();
        assert!(matches!(
            err,
            IvyError::MalformedResponse {
                operation: "list",
                ..
            }
        ));
    }
}
