//! The `rest` dialect: resources under `/webhook` (`POST`, `GET`, `GET /{id}`, `PUT /{id}`,
//! `DELETE /{id}`), UUID ids, `?limit=&offset=` paging, the signing secret only in the create
//! answer. Owns its wire types and its error-body parser.
//!
//! Ivy's document for this dialect names the routes, the request fields and the status codes,
//! but no answer field for the secret, no list envelope and no error body. Our choices (the
//! emulator serves the same, see `docs/ivy-emulator.md`): the secret is `secret` (a few other
//! spellings are read too); lists are `{items, total, limit, offset}`, but any envelope holding
//! `items` (or `data`), or a bare array, is read, and without `total` the walk goes on until a
//! page brings nothing new; errors are `{statusCode, error, code, message}`, read for people only.
//! The test event is `POST /webhook/{id}/test`, a guess: the documented get tells a missing
//! route from an unknown id. The documented create takes no `active` flag, so an inactive
//! subscription is created and then switched off with a `PUT`.

use async_trait::async_trait;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::verbs::{self, ListPage, PAGE_SIZE};
use crate::ivy::api::{Capabilities, IvyApi};
use crate::ivy::dialect::Dialect;
use crate::ivy::error::IvyError;
use crate::ivy::http::Transport;
use crate::ivy::http::classify::{Classify, ErrorBody, Route, Verb};
use crate::ivy::http::decode::{self, decode, decode_list, json_value, str_field};
use crate::ivy::http::route::RouteState;
use crate::ivy::http::transport::Call;
use crate::ivy::types::{
    CreatedSubscription, IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

#[derive(Serialize)]
struct CreateBody<'a> {
    url: &'a str,
    events: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct UpdateBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active: Option<bool>,
}

#[derive(Deserialize)]
struct Webhook {
    #[serde(deserialize_with = "decode::id")]
    id: String,
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

impl From<Webhook> for RemoteSubscription {
    fn from(w: Webhook) -> Self {
        RemoteSubscription {
            id: w.id,
            url: w.url,
            events: w.events,
            description: w.description,
            active: w.active,
        }
    }
}

#[derive(Deserialize)]
struct CreatedWebhook {
    #[serde(flatten)]
    webhook: Webhook,
    #[serde(
        alias = "signing_secret",
        alias = "signingSecret",
        alias = "webhook_secret",
        alias = "webhookSecret"
    )]
    secret: String,
}

/// `{statusCode, error, code?, message}`; `message` may be a list of strings (NestJS-style
/// validation errors), which is joined.
fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let value = json_value(body)?;
    let message = match value.get("message") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        _ => None,
    };
    let code = str_field(&value, "code");
    if message.is_none() && code.is_none() {
        return None;
    }
    Some(ErrorBody {
        message,
        code,
        kind: str_field(&value, "error"),
    })
}

/// The `rest` dialect client.
pub struct RestClient {
    transport: Transport,
    /// What the server has shown about the (undocumented) test route.
    trigger_route: RouteState,
}

impl RestClient {
    pub(crate) fn new(transport: Transport) -> Self {
        Self {
            transport,
            trigger_route: RouteState::unknown(),
        }
    }

    /// How a non-2xx answer to `verb` on `id` is read. Only the test route is undocumented.
    fn how<'a>(&self, verb: Verb, id: &'a str) -> Classify<'a> {
        Classify {
            dialect: Dialect::Rest,
            verb,
            id,
            route: if verb == Verb::TriggerTest {
                Route::Undocumented
            } else {
                Route::Documented
            },
            parse_error,
        }
    }

    /// Whether Ivy has `id`, by the documented get (whose 404 is about the id).
    async fn exists(&self, id: &str) -> Result<bool, IvyError> {
        match self.get(id).await {
            Ok(_) => Ok(true),
            Err(IvyError::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// One page of `GET /webhook`. Paging by offset is documented, the envelope is not: `total`,
    /// when given, says where the list ends; without it the walk ends at a page that brings
    /// nothing new (see [`verbs::collect_pages`]).
    async fn page(&self, offset: usize) -> Result<ListPage<()>, IvyError> {
        let query = [
            ("limit", PAGE_SIZE.to_string()),
            ("offset", offset.to_string()),
        ];
        let call = Call::new(Method::GET, &["webhook"]).query(&query);
        let response = self
            .transport
            .exchange(call, &self.how(Verb::List, ""))
            .await?;
        let page = decode_list::<Webhook>("list", &response, &["items", "data"])?;
        let got = page.items.len();
        let total = page.count(&["total", "count", "total_count", "totalCount"]);
        let more = got > 0 && total.is_none_or(|total| offset + got < total);
        Ok(ListPage {
            items: page
                .items
                .into_iter()
                .map(RemoteSubscription::from)
                .collect(),
            next: more.then_some(()),
        })
    }
}

#[async_trait]
impl IvyApi for RestClient {
    fn dialect(&self) -> Dialect {
        Dialect::Rest
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            get: true,
            list: true,
            delete: true,
            description: true,
            active_flag: true,
            per_subscription_secret: true,
            trigger_test: !self.trigger_route.is_missing(),
        }
    }

    async fn create(
        &self,
        request: &SubscriptionRequest,
        key: &IdempotencyKey,
    ) -> Result<CreatedSubscription, IvyError> {
        let body = CreateBody {
            url: &request.url,
            events: &request.events,
            description: request.description.as_deref(),
        };
        let call = Call::new(Method::POST, &["webhook"])
            .json(&body)?
            .idempotency_key(key);
        let response = self
            .transport
            .exchange(call, &self.how(Verb::Create, ""))
            .await?;
        let created: CreatedWebhook = decode("create", &response)?;
        let secret = decode::signing_secret("create", created.secret)?;
        // The documented create takes no active flag.
        let subscription =
            verbs::deactivate_if_asked(self, request, key, created.webhook.into()).await;
        Ok(CreatedSubscription {
            subscription,
            signing_secret: Some(secret),
        })
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        let segments = ["webhook", id];
        let call = Call::new(Method::GET, &segments);
        let response = self
            .transport
            .exchange(call, &self.how(Verb::Get, id))
            .await?;
        Ok(decode::<Webhook>("get", &response)?.into())
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        let body = UpdateBody {
            url: patch.url.as_deref(),
            events: patch.events.as_deref(),
            description: patch.description.as_deref(),
            active: patch.active,
        };
        let segments = ["webhook", id];
        let call = Call::new(Method::PUT, &segments)
            .json(&body)?
            .idempotency_key(key);
        let response = self
            .transport
            .exchange(call, &self.how(Verb::Update, id))
            .await?;
        Ok(decode::<Webhook>("update", &response)?.into())
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        let segments = ["webhook", id];
        let call = Call::new(Method::DELETE, &segments).idempotency_key(key);
        self.transport
            .exchange(call, &self.how(Verb::Delete, id))
            .await?;
        // No body is documented for a delete; the status says it all.
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        verbs::collect_pages(|offset, _| self.page(offset)).await
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        let how = self.how(Verb::TriggerTest, id);
        if self.trigger_route.is_missing() {
            return Err(how.unsupported());
        }
        let segments = ["webhook", id, "test"];
        let answer = self
            .transport
            .exchange(Call::new(Method::POST, &segments), &how)
            .await;
        verbs::on_undocumented_route(&self.trigger_route, how.unsupported(), answer, || {
            self.exists(id)
        })
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivy::error::ConflictKind;
    use crate::ivy::http::test_support::*;

    fn client(stub: &Stub) -> RestClient {
        RestClient::new(transport(stub.addr))
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::new("idem-1").unwrap()
    }

    fn request(active: bool) -> SubscriptionRequest {
        SubscriptionRequest {
            url: "https://shop.example/hook".into(),
            events: vec!["order_created".into(), "test".into()],
            description: Some("mine".into()),
            active,
        }
    }

    const WEBHOOK: &str = r#"{"id":"3f1c0000-0000-4000-8000-000000000001","url":"https://shop.example/hook",
        "events":["order_created","test"],"description":"mine","active":true,
        "created_at":"2024-01-15T10:30:00Z","updated_at":"2024-01-15T10:30:00Z"}"#;

    fn created_body() -> String {
        WEBHOOK.replacen('{', r#"{"secret":"whsec_abc","#, 1)
    }

    #[tokio::test]
    async fn create_posts_the_documented_fields_and_returns_the_secret() {
        let stub = stub(vec![answer(201, &created_body())]).await;
        let created = client(&stub).create(&request(true), &key()).await.unwrap();
        assert_eq!(
            created.subscription.id,
            "3f1c0000-0000-4000-8000-000000000001"
        );
        assert_eq!(created.subscription.active, Some(true));
        assert_eq!(created.subscription.description.as_deref(), Some("mine"));
        assert_eq!(created.signing_secret.unwrap().expose(), "whsec_abc");
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(
            (seen.method.as_str(), seen.path_and_query.as_str()),
            ("POST", "/webhook")
        );
        assert_eq!(seen.headers["idempotency-key"], "idem-1");
        let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"url":"https://shop.example/hook","events":["order_created","test"],"description":"mine"})
        );
    }

    #[tokio::test]
    async fn an_inactive_create_is_followed_by_a_put() {
        let inactive = WEBHOOK.replace("\"active\":true", "\"active\":false");
        let stub = stub(vec![answer(201, &created_body()), answer(200, &inactive)]).await;
        let created = client(&stub).create(&request(false), &key()).await.unwrap();
        assert_eq!(created.subscription.active, Some(false));
        let seen = stub.seen.lock().unwrap()[1].clone();
        assert_eq!(seen.method, "PUT");
        assert_eq!(
            seen.path_and_query,
            "/webhook/3f1c0000-0000-4000-8000-000000000001"
        );
        assert_eq!(seen.body, br#"{"active":false}"#);
        assert_eq!(seen.headers["idempotency-key"], "idem-1:deactivate");
    }

    #[tokio::test]
    async fn a_failed_deactivation_still_returns_the_secret() {
        let stub = stub(vec![answer(201, &created_body()), answer(503, "")]).await;
        let created = client(&stub).create(&request(false), &key()).await.unwrap();
        assert_eq!(created.subscription.active, Some(true));
        assert!(created.signing_secret.is_some());
    }

    #[tokio::test]
    async fn a_create_answer_without_secret_is_malformed() {
        let stub = stub(vec![answer(201, WEBHOOK)]).await;
        let err = client(&stub)
            .create(&request(true), &key())
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
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn update_sends_only_the_given_fields() {
        let stub = stub(vec![answer(200, WEBHOOK)]).await;
        let patch = SubscriptionPatch {
            events: Some(vec!["test".into()]),
            ..Default::default()
        };
        client(&stub).update("abc", &patch, &key()).await.unwrap();
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.body, br#"{"events":["test"]}"#);
    }

    #[tokio::test]
    async fn list_walks_every_page() {
        let item = |i: usize| WEBHOOK.replace("000000000001", &format!("{i:012}"));
        let page = |from: usize, n: usize| {
            let items: Vec<String> = (from..from + n).map(item).collect();
            format!(
                r#"{{"items":[{}],"total":150,"limit":100,"offset":{from}}}"#,
                items.join(",")
            )
        };
        let stub = stub(vec![
            answer(200, &page(0, 100)),
            answer(200, &page(100, 50)),
        ])
        .await;
        let all = client(&stub).list().await.unwrap();
        assert_eq!(all.len(), 150);
        let seen = stub.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].path_and_query, "/webhook?limit=100&offset=0");
        assert_eq!(seen[1].path_and_query, "/webhook?limit=100&offset=100");
    }

    fn webhook(i: usize) -> String {
        WEBHOOK.replace("000000000001", &format!("{i:012}"))
    }

    fn items(range: std::ops::Range<usize>) -> String {
        range.map(webhook).collect::<Vec<_>>().join(",")
    }

    #[tokio::test]
    async fn list_pages_are_followed_by_total_or_until_nothing_new_whatever_their_size() {
        let cases: Vec<(&str, Vec<String>, usize, Vec<&str>)> = vec![
            (
                "pages smaller than asked, with total",
                vec![
                    format!(r#"{{"items":[{}],"total":70}}"#, items(0..30)),
                    format!(r#"{{"items":[{}],"total":70}}"#, items(30..60)),
                    format!(r#"{{"items":[{}],"total":70}}"#, items(60..70)),
                ],
                70,
                vec!["offset=0", "offset=30", "offset=60"],
            ),
            (
                "a bare array, then an empty one",
                vec![format!("[{}]", items(0..2)), "[]".to_owned()],
                2,
                vec!["offset=0", "offset=2"],
            ),
            (
                "items without paging fields, then none",
                vec![
                    format!(r#"{{"items":[{}]}}"#, items(0..3)),
                    r#"{"items":[]}"#.to_owned(),
                ],
                3,
                vec!["offset=0", "offset=3"],
            ),
            (
                "a server that ignores the offset",
                vec![format!(r#"{{"data":[{}]}}"#, items(0..3))],
                3,
                vec!["offset=0", "offset=3"],
            ),
        ];
        for (name, pages, count, offsets) in cases {
            let stub = stub(pages.iter().map(|p| answer(200, p)).collect()).await;
            let all = client(&stub).list().await.unwrap();
            assert_eq!(all.len(), count, "{name}");
            let seen = stub.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), offsets.len(), "{name}");
            for (seen, offset) in seen.iter().zip(offsets) {
                assert!(seen.path_and_query.ends_with(offset), "{name}: {seen:?}");
            }
        }
    }

    #[tokio::test]
    async fn ids_may_be_numbers_and_unknown_fields_are_ignored() {
        let body = r#"{"id":42,"url":"https://a.example/","events":["test"],"metadata":{"x":1}}"#;
        let stub = stub(vec![answer(200, body)]).await;
        let got = client(&stub).get("42").await.unwrap();
        assert_eq!(got.id, "42");
        assert_eq!((got.description, got.active), (None, None));
    }

    #[tokio::test]
    async fn the_secret_is_read_under_other_common_names() {
        let body = WEBHOOK.replacen('{', r#"{"signing_secret":"whsec_other_name","#, 1);
        let stub = stub(vec![answer(201, &body)]).await;
        let created = client(&stub).create(&request(true), &key()).await.unwrap();
        assert_eq!(created.signing_secret.unwrap().expose(), "whsec_other_name");
    }

    #[tokio::test]
    async fn a_create_answer_with_an_empty_secret_or_no_id_is_malformed() {
        let empty_secret = WEBHOOK.replacen('{', r#"{"secret":"  ","#, 1);
        let without_id =
            created_body().replace(r#""id":"3f1c0000-0000-4000-8000-000000000001","#, "");
        for body in [empty_secret, without_id] {
            let stub = stub(vec![answer(201, &body)]).await;
            let err = client(&stub)
                .create(&request(true), &key())
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
                "{body}: {err:?}"
            );
            assert!(!err.to_string().contains("whsec_"), "{err}");
        }
    }

    #[tokio::test]
    async fn validation_errors_keep_ivys_message_and_code() {
        let body = r#"{"statusCode":400,"error":"Bad Request","code":"invalid_url","message":"url must be https"}"#;
        let stub = stub(vec![answer(400, body)]).await;
        let err = client(&stub)
            .create(&request(true), &key())
            .await
            .unwrap_err();
        match err {
            IvyError::Validation { message, code } => {
                assert_eq!(message, "url must be https");
                assert_eq!(code.as_deref(), Some("invalid_url"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_list_valued_message_is_joined() {
        let body = r#"{"statusCode":400,"error":"Bad Request","message":["a","b"]}"#;
        let stub = stub(vec![answer(400, body)]).await;
        let err = client(&stub).get("x").await.unwrap_err();
        assert!(matches!(err, IvyError::Validation { message, .. } if message == "a; b"));
    }

    #[tokio::test]
    async fn conflicts_say_which_kind() {
        let dup =
            r#"{"statusCode":409,"error":"Conflict","code":"duplicate_url","message":"taken"}"#;
        let idem = r#"{"statusCode":409,"error":"Conflict","code":"idempotency_error","message":"reused"}"#;
        let stub = stub(vec![answer(409, dup), answer(409, idem)]).await;
        let c = client(&stub);
        let first = c.create(&request(true), &key()).await.unwrap_err();
        let second = c.create(&request(true), &key()).await.unwrap_err();
        assert!(matches!(
            first,
            IvyError::Conflict {
                kind: ConflictKind::DuplicateUrl,
                ..
            }
        ));
        assert!(matches!(
            second,
            IvyError::Conflict {
                kind: ConflictKind::IdempotencyKeyReused,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_409_without_an_idempotency_statement_is_a_duplicate_url_to_create_and_update() {
        for body in [
            "",
            "Conflict",
            "<html><body>409 Conflict</body></html>",
            r#"{"statusCode":409,"error":"Conflict","code":"E_CONFLICT"}"#,
        ] {
            let stub = stub(vec![answer(409, body)]).await;
            let c = client(&stub);
            let created = c.create(&request(true), &key()).await.unwrap_err();
            let patch = SubscriptionPatch {
                url: Some("https://other.example/".into()),
                ..Default::default()
            };
            let updated = c.update("x", &patch, &key()).await.unwrap_err();
            for err in [created, updated] {
                assert!(
                    matches!(
                        err,
                        IvyError::Conflict {
                            kind: ConflictKind::DuplicateUrl,
                            ..
                        }
                    ),
                    "{body:?}: {err:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_proxys_html_502_is_transient() {
        let mut page = answer(
            502,
            "<html><head><title>502 Bad Gateway</title></head></html>",
        );
        page.headers = vec![("content-type", "text/html".into())];
        let stub = stub(vec![page]).await;
        let err = client(&stub).get("x").await.unwrap_err();
        assert!(matches!(err, IvyError::Transient { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn get_of_an_unknown_id_is_not_found_even_without_a_body() {
        let stub = stub(vec![answer(404, "")]).await;
        let err = client(&stub).get("nope").await.unwrap_err();
        assert!(matches!(err, IvyError::NotFound { id } if id == "nope"));
    }

    #[tokio::test]
    async fn a_404_from_the_test_route_for_a_subscription_ivy_has_means_the_route_is_missing() {
        let stub = stub(vec![answer(404, ""), answer(200, WEBHOOK)]).await;
        let c = client(&stub);
        let err = c.trigger_test("x").await.unwrap_err();
        assert!(matches!(
            err,
            IvyError::Unsupported {
                dialect: "rest",
                operation: "trigger_test"
            }
        ));
        assert!(!c.capabilities().trigger_test);
        let seen = stub.seen.lock().unwrap().clone();
        assert_eq!(
            (seen[1].method.as_str(), seen[1].path_and_query.as_str()),
            ("GET", "/webhook/x")
        );
    }

    #[tokio::test]
    async fn a_404_from_the_test_route_for_an_unknown_id_is_not_found() {
        let body =
            r#"{"statusCode":404,"error":"Not Found","message":"Cannot POST /webhook/x/test"}"#;
        let stub = stub(vec![answer(404, body), answer(404, "")]).await;
        let c = client(&stub);
        let err = c.trigger_test("x").await.unwrap_err();
        assert!(
            matches!(&err, IvyError::NotFound { id } if id == "x"),
            "{err:?}"
        );
        assert!(c.capabilities().trigger_test);
    }

    #[tokio::test]
    async fn a_405_from_the_test_route_means_it_is_missing_without_asking_more() {
        let stub = stub(vec![answer(405, "")]).await;
        let c = client(&stub);
        assert!(matches!(
            c.trigger_test("x").await,
            Err(IvyError::Unsupported { .. })
        ));
        assert!(!c.capabilities().trigger_test);
        assert_eq!(stub.seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn malformed_success_bodies_are_malformed_responses() {
        for body in ["", "not json", "{\"id\":1}", "[]"] {
            let stub = stub(vec![answer(200, body)]).await;
            let err = client(&stub).get("x").await.unwrap_err();
            assert!(
                matches!(
                    err,
                    IvyError::MalformedResponse {
                        operation: "get",
                        ..
                    }
                ),
                "{body:?}: {err:?}"
            );
        }
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after() {
        let mut limited = answer(429, "");
        limited.headers.push(("retry-after", "12".into()));
        let stub = stub(vec![limited]).await;
        let err = client(&stub).list().await.unwrap_err();
        assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(12)));
    }
}
