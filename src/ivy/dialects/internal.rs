//! The `internal` dialect: `POST /api/service/internal/webhook-subscription/{verb}`,
//! snake_case fields, `wsub_…` ids, `status: active|inactive`, the secret in the create answer as
//! `webhook_signing_secret`, errors as `{"error": {code, message, type}}` (read for people only).
//!
//! Ivy documents only `create` (with an example answer) and, on the same family of pages,
//! `update`. `get`, `list`, `delete` and `trigger-test` are this project's guesses in the same
//! style (the emulator serves them, see `docs/ivy-emulator.md`), and a real Ivy may lack them.
//! What an answer shows about such a route is remembered and reported by
//! [`IvyApi::capabilities`] (see [`verbs::on_undocumented_route`]; a missing `get` falls back
//! to scanning `list`). The list envelope is ours too: items under `data` (or `items`, or a
//! bare array); `has_more` / `next_cursor` when there is more, and without either it is one
//! page. A missing `status` is reported as unknown (`active: None`).

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
use crate::ivy::http::route::RouteState;
use crate::ivy::http::transport::{Call, RawResponse};
use crate::ivy::types::{
    CreatedSubscription, IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

const PREFIX: [&str; 4] = ["api", "service", "internal", "webhook-subscription"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Active,
    Inactive,
}

impl From<bool> for Status {
    fn from(active: bool) -> Self {
        if active {
            Status::Active
        } else {
            Status::Inactive
        }
    }
}

#[derive(Serialize)]
struct CreateBody<'a> {
    endpoint_url: &'a str,
    event_types: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct UpdateBody<'a> {
    subscription_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_types: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
}

#[derive(Serialize)]
struct ById<'a> {
    subscription_id: &'a str,
}

#[derive(Serialize)]
struct ListBody<'a> {
    limit: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<&'a str>,
}

#[derive(Deserialize)]
struct Subscription {
    #[serde(deserialize_with = "decode::id")]
    id: String,
    endpoint_url: String,
    event_types: Vec<String>,
    #[serde(default)]
    status: Option<Status>,
    #[serde(default)]
    description: Option<String>,
}

impl From<Subscription> for RemoteSubscription {
    fn from(s: Subscription) -> Self {
        RemoteSubscription {
            id: s.id,
            url: s.endpoint_url,
            events: s.event_types,
            description: s.description,
            active: s.status.map(|status| status == Status::Active),
        }
    }
}

#[derive(Deserialize)]
struct Created {
    #[serde(flatten)]
    subscription: Subscription,
    webhook_signing_secret: String,
}

/// `{"error": {"code", "message", "type"}}`.
fn parse_error(body: &[u8]) -> Option<ErrorBody> {
    let value = json_value(body)?;
    let error = value.get("error")?;
    if !error.is_object() {
        return None;
    }
    Some(ErrorBody {
        message: str_field(error, "message"),
        code: str_field(error, "code"),
        kind: str_field(error, "type"),
    })
}

/// The `internal` dialect client. What the server shows about the undocumented routes is
/// remembered (see [`verbs::on_undocumented_route`]).
pub struct InternalClient {
    transport: Transport,
    get_route: RouteState,
    list_route: RouteState,
    delete_route: RouteState,
    trigger_route: RouteState,
}

impl InternalClient {
    pub(crate) fn new(transport: Transport) -> Self {
        Self {
            transport,
            get_route: RouteState::unknown(),
            list_route: RouteState::unknown(),
            delete_route: RouteState::unknown(),
            trigger_route: RouteState::unknown(),
        }
    }

    /// The state of `verb`'s route; `None` for the documented create and update.
    fn route(&self, verb: Verb) -> Option<&RouteState> {
        match verb {
            Verb::Create | Verb::Update => None,
            Verb::Get => Some(&self.get_route),
            Verb::List => Some(&self.list_route),
            Verb::Delete => Some(&self.delete_route),
            Verb::TriggerTest => Some(&self.trigger_route),
        }
    }

    /// Sends `body` to `…/webhook-subscription/{verb}`; non-2xx answers become errors, and what
    /// an answer shows about an undocumented route is remembered for
    /// [`IvyApi::capabilities`].
    async fn post(
        &self,
        verb: Verb,
        id: &str,
        body: impl Serialize,
        key: Option<&IdempotencyKey>,
    ) -> Result<RawResponse, IvyError> {
        let route = self.route(verb);
        let how = Classify {
            dialect: Dialect::Internal,
            verb,
            id,
            route: if route.is_some() {
                Route::Undocumented
            } else {
                Route::Documented
            },
            parse_error,
        };
        if route.is_some_and(RouteState::is_missing) {
            return Err(how.unsupported());
        }
        let segments = [PREFIX[0], PREFIX[1], PREFIX[2], PREFIX[3], path(verb)];
        let mut call = Call::new(Method::POST, &segments).json(body)?;
        if let Some(key) = key {
            call = call.idempotency_key(key);
        }
        let answer = self.transport.exchange(call, &how).await;
        match route {
            None => answer,
            // The list's 404 can only mean its route is missing, so it settles the others'.
            Some(route) => {
                verbs::on_undocumented_route(route, how.unsupported(), answer, || self.lists(id))
                    .await
            }
        }
    }

    /// Whether the list holds `id`.
    async fn lists(&self, id: &str) -> Result<bool, IvyError> {
        Ok(self.list().await?.iter().any(|s| s.id == id))
    }

    /// One page of `list`. `has_more: false` ends the list; a `next_cursor` continues it;
    /// `has_more: true` without a cursor cannot be followed, and an envelope with neither field
    /// is the whole list.
    async fn page(&self, cursor: Option<String>) -> Result<ListPage<String>, IvyError> {
        let body = ListBody {
            limit: PAGE_SIZE,
            cursor: cursor.as_deref(),
        };
        let response = self.post(Verb::List, "", body, None).await?;
        let page = decode_list::<Subscription>("list", &response, &["data", "items"])?;
        let next = match (
            page.flag(&["has_more", "hasMore"]),
            page.token(&["next_cursor", "nextCursor"]),
        ) {
            (Some(false), _) | (None, None) => None,
            (_, Some(cursor)) => Some(cursor),
            (Some(true), None) => {
                return Err(IvyError::MalformedResponse {
                    operation: "list",
                    message: "`has_more` is true but there is no `next_cursor` to follow".into(),
                });
            }
        };
        Ok(ListPage {
            items: page
                .items
                .into_iter()
                .map(RemoteSubscription::from)
                .collect(),
            next,
        })
    }
}

/// The last path segment of `verb`'s route.
fn path(verb: Verb) -> &'static str {
    match verb {
        Verb::Create => "create",
        Verb::Get => "get",
        Verb::Update => "update",
        Verb::Delete => "delete",
        Verb::List => "list",
        Verb::TriggerTest => "trigger-test",
    }
}

fn unsupported(verb: Verb) -> IvyError {
    IvyError::Unsupported {
        dialect: Dialect::Internal.as_str(),
        operation: verb.as_str(),
    }
}

#[async_trait]
impl IvyApi for InternalClient {
    fn dialect(&self) -> Dialect {
        Dialect::Internal
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            get: !self.get_route.is_missing(),
            list: !self.list_route.is_missing(),
            delete: !self.delete_route.is_missing(),
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
            endpoint_url: &request.url,
            event_types: &request.events,
            description: request.description.as_deref(),
        };
        let response = self.post(Verb::Create, "", body, Some(key)).await?;
        let created: Created = decode("create", &response)?;
        let secret = decode::signing_secret("create", created.webhook_signing_secret)?;
        // The create body has no status; the documented update switches it off.
        let subscription =
            verbs::deactivate_if_asked(self, request, key, created.subscription.into()).await;
        Ok(CreatedSubscription {
            subscription,
            signing_secret: Some(secret),
        })
    }

    async fn get(&self, id: &str) -> Result<RemoteSubscription, IvyError> {
        if !self.get_route.is_missing() {
            let body = ById {
                subscription_id: id,
            };
            match self.post(Verb::Get, id, body, None).await {
                Ok(response) => return Ok(decode::<Subscription>("get", &response)?.into()),
                Err(IvyError::Unsupported { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        verbs::scan_list(self, id).await.map_err(|err| match err {
            IvyError::Unsupported { .. } => unsupported(Verb::Get),
            other => other,
        })
    }

    async fn update(
        &self,
        id: &str,
        patch: &SubscriptionPatch,
        key: &IdempotencyKey,
    ) -> Result<RemoteSubscription, IvyError> {
        let body = UpdateBody {
            subscription_id: id,
            endpoint_url: patch.url.as_deref(),
            event_types: patch.events.as_deref(),
            description: patch.description.as_deref(),
            status: patch.active.map(Status::from),
        };
        let response = self.post(Verb::Update, id, body, Some(key)).await?;
        Ok(decode::<Subscription>("update", &response)?.into())
    }

    async fn delete(&self, id: &str, key: &IdempotencyKey) -> Result<(), IvyError> {
        let body = ById {
            subscription_id: id,
        };
        let response = self.post(Verb::Delete, id, body, Some(key)).await?;
        // The answer's shape is our guess: the status decides, unless it says `deleted: false`.
        if says_false(&response, "deleted") {
            Err(IvyError::Transient {
                message: format!("Ivy answered deleted=false for {id}"),
            })
        } else {
            Ok(())
        }
    }

    async fn list(&self) -> Result<Vec<RemoteSubscription>, IvyError> {
        verbs::collect_pages(|_, cursor| self.page(cursor)).await
    }

    async fn trigger_test(&self, id: &str) -> Result<(), IvyError> {
        let body = ById {
            subscription_id: id,
        };
        self.post(Verb::TriggerTest, id, body, None).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivy::http::test_support::*;

    fn client(stub: &Stub) -> InternalClient {
        InternalClient::new(transport(stub.addr))
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::new("idem-2").unwrap()
    }

    const SUB: &str = r#"{"id":"wsub_1234567890","endpoint_url":"https://your-domain.com/webhooks/ivy",
        "event_types":["checkout_session.completed","payout.paid"],"status":"active",
        "description":"Production","created_at":"2024-01-15T10:30:00Z"}"#;

    fn request(active: bool) -> SubscriptionRequest {
        SubscriptionRequest {
            url: "https://your-domain.com/webhooks/ivy".into(),
            events: vec!["checkout_session.completed".into(), "payout.paid".into()],
            description: Some("Production".into()),
            active,
        }
    }

    #[tokio::test]
    async fn create_matches_the_documented_example() {
        // The example answer in Ivy's document for this route.
        let documented = SUB.replacen('{', r#"{"webhook_signing_secret":"whsec_abc123def456","#, 1);
        let stub = stub(vec![answer(200, &documented)]).await;
        let created = client(&stub).create(&request(true), &key()).await.unwrap();
        assert_eq!(created.subscription.id, "wsub_1234567890");
        assert_eq!(created.subscription.active, Some(true));
        assert_eq!(
            created.signing_secret.unwrap().expose(),
            "whsec_abc123def456"
        );
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.path_and_query,
            "/api/service/internal/webhook-subscription/create"
        );
        let sent: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"endpoint_url":"https://your-domain.com/webhooks/ivy",
                "event_types":["checkout_session.completed","payout.paid"],"description":"Production"})
        );
    }

    #[tokio::test]
    async fn an_inactive_create_is_followed_by_a_status_update() {
        let created = SUB.replacen('{', r#"{"webhook_signing_secret":"whsec_x","#, 1);
        let inactive = SUB.replace("\"active\"", "\"inactive\"");
        let stub = stub(vec![answer(200, &created), answer(200, &inactive)]).await;
        let got = client(&stub).create(&request(false), &key()).await.unwrap();
        assert_eq!(got.subscription.active, Some(false));
        let seen = stub.seen.lock().unwrap()[1].clone();
        assert!(seen.path_and_query.ends_with("/update"));
        assert_eq!(
            seen.body,
            br#"{"subscription_id":"wsub_1234567890","status":"inactive"}"#
        );
    }

    #[tokio::test]
    async fn the_documented_validation_error_keeps_code_and_message() {
        let body = r#"{"error":{"code":"invalid_endpoint_url","message":"The provided endpoint URL is invalid. Must be a valid HTTPS URL.","type":"validation_error"}}"#;
        let stub = stub(vec![answer(400, body)]).await;
        let err = client(&stub)
            .create(&request(true), &key())
            .await
            .unwrap_err();
        match err {
            IvyError::Validation { message, code } => {
                assert!(message.contains("Must be a valid HTTPS URL"));
                assert_eq!(code.as_deref(), Some("invalid_endpoint_url"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn update_sends_subscription_id_and_only_given_fields() {
        let stub = stub(vec![answer(200, SUB)]).await;
        let patch = SubscriptionPatch {
            url: Some("https://x.example/h".into()),
            active: Some(true),
            ..Default::default()
        };
        client(&stub)
            .update("wsub_1", &patch, &key())
            .await
            .unwrap();
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.body,
            br#"{"subscription_id":"wsub_1","endpoint_url":"https://x.example/h","status":"active"}"#
        );
    }

    const NOT_FOUND: &str = r#"{"error":{"code":"resource_not_found","message":"no such subscription","type":"not_found_error"}}"#;

    fn page_of(items: &[&str]) -> String {
        format!(r#"{{"data":[{}],"has_more":false}}"#, items.join(","))
    }

    #[tokio::test]
    async fn a_404_to_get_is_not_found_when_the_list_lacks_the_id() {
        let stub = stub(vec![answer(404, NOT_FOUND), answer(200, &page_of(&[SUB]))]).await;
        let c = client(&stub);
        let err = c.get("wsub_gone").await.unwrap_err();
        assert!(matches!(err, IvyError::NotFound { id } if id == "wsub_gone"));
        assert!(c.capabilities().get);
        let seen = stub.seen.lock().unwrap().clone();
        assert!(seen[1].path_and_query.ends_with("/list"));
    }

    #[tokio::test]
    async fn a_404_to_get_for_an_id_the_list_holds_means_the_get_route_is_missing() {
        // A JSON body changes nothing: the list shows the subscription exists.
        let stub = stub(vec![answer(404, NOT_FOUND), answer(200, &page_of(&[SUB]))]).await;
        let c = client(&stub);
        let found = c.get("wsub_1234567890").await.unwrap();
        assert_eq!(found.id, "wsub_1234567890");
        assert!(!c.capabilities().get);
        assert!(c.capabilities().list);
    }

    #[tokio::test]
    async fn once_get_has_answered_its_404_is_not_found_without_a_list() {
        let stub = stub(vec![answer(200, SUB), answer(404, "")]).await;
        let c = client(&stub);
        c.get("wsub_1234567890").await.unwrap();
        let err = c.get("wsub_gone").await.unwrap_err();
        assert!(matches!(err, IvyError::NotFound { .. }), "{err:?}");
        assert_eq!(stub.seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_404_to_the_list_means_its_route_is_missing_whatever_the_body() {
        for body in ["", NOT_FOUND, "<html>Not Found</html>"] {
            let stub = stub(vec![answer(404, body)]).await;
            let c = client(&stub);
            let err = c.list().await.unwrap_err();
            assert!(
                matches!(
                    err,
                    IvyError::Unsupported {
                        operation: "list",
                        ..
                    }
                ),
                "{body:?}: {err:?}"
            );
            assert!(!c.capabilities().list);
        }
    }

    #[tokio::test]
    async fn a_404_to_delete_while_the_list_fails_is_that_failure_and_decides_nothing() {
        let stub = stub(vec![answer(404, NOT_FOUND), answer(503, "")]).await;
        let c = client(&stub);
        let err = c.delete("wsub_1", &key()).await.unwrap_err();
        assert!(matches!(err, IvyError::Transient { .. }), "{err:?}");
        assert!(c.capabilities().delete);
    }

    #[tokio::test]
    async fn a_missing_route_is_unsupported_and_remembered() {
        let stub = stub(vec![answer(404, "")]).await;
        let c = client(&stub);
        let key = key();
        let err = c.delete("wsub_1", &key).await.unwrap_err();
        assert!(
            matches!(
                err,
                IvyError::Unsupported {
                    operation: "delete",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!c.capabilities().delete);
        // Not asked again.
        let calls = stub.seen.lock().unwrap().len();
        assert!(c.delete("wsub_1", &key).await.is_err());
        assert_eq!(stub.seen.lock().unwrap().len(), calls);
    }

    #[tokio::test]
    async fn a_missing_get_falls_back_to_the_list() {
        let page = format!(r#"{{"data":[{SUB}],"has_more":false,"next_cursor":null}}"#);
        let stub = stub(vec![
            answer(405, r#"{"statusCode":405,"message":"Cannot POST"}"#),
            answer(200, &page),
        ])
        .await;
        let c = client(&stub);
        let found = c.get("wsub_1234567890").await.unwrap();
        assert_eq!(found.url, "https://your-domain.com/webhooks/ivy");
        assert!(!c.capabilities().get);
        let err = c.get("wsub_other").await.unwrap_err();
        assert!(matches!(err, IvyError::NotFound { .. }));
    }

    #[tokio::test]
    async fn list_follows_the_cursor() {
        let first = format!(r#"{{"data":[{SUB}],"has_more":true,"next_cursor":"c1"}}"#);
        let other = SUB.replace("wsub_1234567890", "wsub_2");
        let second = format!(r#"{{"data":[{other}],"has_more":false}}"#);
        let stub = stub(vec![answer(200, &first), answer(200, &second)]).await;
        assert_eq!(client(&stub).list().await.unwrap().len(), 2);
        let seen = stub.seen.lock().unwrap().clone();
        assert_eq!(seen[0].body, br#"{"limit":100}"#);
        assert_eq!(seen[1].body, br#"{"limit":100,"cursor":"c1"}"#);
    }

    /// `SUB` with another id.
    fn sub(id: &str) -> String {
        SUB.replace(r#""wsub_1234567890""#, &format!(r#""{id}""#))
    }

    #[tokio::test]
    async fn list_envelopes_are_read_whatever_the_paging_fields() {
        let (a, b) = (sub("wsub_a"), sub("wsub_b"));
        let cases: Vec<(&str, Vec<String>, usize, Vec<&str>)> = vec![
            (
                "items only",
                vec![format!(r#"{{"data":[{a},{b}]}}"#)],
                2,
                vec![r#"{"limit":100}"#],
            ),
            (
                "a bare array",
                vec![format!("[{a}]")],
                1,
                vec![r#"{"limit":100}"#],
            ),
            (
                "a cursor without has_more, then none",
                vec![
                    format!(r#"{{"data":[{a}],"next_cursor":"c1"}}"#),
                    format!(r#"{{"data":[{b}],"next_cursor":null}}"#),
                ],
                2,
                vec![r#"{"limit":100}"#, r#"{"limit":100,"cursor":"c1"}"#],
            ),
            (
                "a numeric cursor, unknown fields, a short page",
                vec![
                    format!(
                        r#"{{"object":"list","data":[{a}],"has_more":true,"next_cursor":7,"x":{{}}}}"#
                    ),
                    format!(r#"{{"items":[{b}],"has_more":false,"next_cursor":"ignored"}}"#),
                ],
                2,
                vec![r#"{"limit":100}"#, r#"{"limit":100,"cursor":"7"}"#],
            ),
        ];
        for (name, pages, count, bodies) in cases {
            let stub = stub(pages.iter().map(|p| answer(200, p)).collect()).await;
            let all = client(&stub).list().await.unwrap();
            assert_eq!(all.len(), count, "{name}");
            let seen: Vec<String> = stub
                .seen
                .lock()
                .unwrap()
                .iter()
                .map(|s| String::from_utf8(s.body.clone()).unwrap())
                .collect();
            assert_eq!(seen, bodies, "{name}");
        }
    }

    #[tokio::test]
    async fn has_more_without_a_cursor_is_malformed() {
        let page = format!(r#"{{"data":[{SUB}],"has_more":true}}"#);
        let stub = stub(vec![answer(200, &page)]).await;
        let err = client(&stub).list().await.unwrap_err();
        assert!(matches!(err, IvyError::MalformedResponse { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn numeric_ids_are_read_as_strings_and_a_missing_status_is_unknown() {
        let body = r#"{"id":12345,"endpoint_url":"https://a.example/","event_types":["test"]}"#;
        let stub = stub(vec![answer(200, body)]).await;
        let got = client(&stub).get("12345").await.unwrap();
        assert_eq!(got.id, "12345");
        assert_eq!(got.active, None);
        assert_eq!(got.description, None);
    }

    #[tokio::test]
    async fn a_create_answer_without_an_id_or_a_secret_is_malformed() {
        let without_secret = SUB.to_owned();
        let empty_secret = SUB.replacen('{', r#"{"webhook_signing_secret":"","#, 1);
        let null_secret = SUB.replacen('{', r#"{"webhook_signing_secret":null,"#, 1);
        let without_id = SUB.replace(r#""id":"wsub_1234567890","#, "").replacen(
            '{',
            r#"{"webhook_signing_secret":"whsec_x","#,
            1,
        );
        let empty_id = sub("").replacen('{', r#"{"webhook_signing_secret":"whsec_x","#, 1);
        for body in [
            without_secret,
            empty_secret,
            null_secret,
            without_id,
            empty_id,
        ] {
            let stub = stub(vec![answer(200, &body)]).await;
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
        }
    }

    #[tokio::test]
    async fn a_2xx_to_delete_is_done_unless_it_says_deleted_false() {
        for (body, done) in [
            ("", true),
            ("<html>ok</html>", true),
            (r#"{"id":"wsub_1"}"#, true),
            (r#"{"id":"wsub_1","deleted":true}"#, true),
            (r#"{"id":"wsub_1","deleted":false}"#, false),
        ] {
            let stub = stub(vec![answer(200, body)]).await;
            let answer = client(&stub).delete("wsub_1", &key()).await;
            assert_eq!(answer.is_ok(), done, "{body:?}: {answer:?}");
        }
    }

    #[tokio::test]
    async fn an_unknown_status_value_is_malformed() {
        let stub = stub(vec![answer(200, &SUB.replace("\"active\"", "\"paused\""))]).await;
        let err = client(&stub).get("wsub_1").await.unwrap_err();
        assert!(matches!(err, IvyError::MalformedResponse { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_non_json_error_body_is_still_classified() {
        let stub = stub(vec![answer(503, "<html>bad gateway</html>")]).await;
        let err = client(&stub).list().await.unwrap_err();
        assert!(matches!(err, IvyError::Transient { .. }), "{err:?}");
    }
}
