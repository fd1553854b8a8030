//! Quirk profiles over plain HTTP: each quirk changes the wire answer as
//! `docs/ivy-emulator.md` says, and without quirks the answers stay the documented ones.

// Helpers outside #[test] functions unwrap too: a failed step should fail the test.
#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "emulator_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use ivy_webhook_operator::emulator::{EmulatorConfig, Quirks, RunningEmulator};
use ivy_webhook_operator::ivy::Dialect;
use serde_json::{Value, json};
use support::{KEY, config, emulator, raw};

const INTERNAL: &str = "api/service/internal/webhook-subscription";
const SERVICE: &str = "api/service/webhook-subscription";

async fn quirky(profiles: &str) -> RunningEmulator {
    emulator(config().with_quirks(Quirks::parse(profiles).unwrap())).await
}

/// One raw answer.
struct Answer {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.header("X-Ivy-Api-Key", KEY).send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: response.text().await.unwrap(),
    }
}

async fn post(emu: &RunningEmulator, path: &str, body: Value) -> Answer {
    send(raw().post(emu.base_url().join(path).unwrap()).json(&body)).await
}

/// Creates a subscription to `url` through `dialect`, with an `Idempotency-Key` if given.
async fn create(emu: &RunningEmulator, dialect: Dialect, url: &str, key: Option<&str>) -> Answer {
    let (path, body) = match dialect {
        Dialect::Rest => (
            "webhook".to_owned(),
            json!({"url": url, "events": ["test"]}),
        ),
        Dialect::Internal => (
            format!("{INTERNAL}/create"),
            json!({"endpoint_url": url, "event_types": ["test"]}),
        ),
        Dialect::Service => (
            format!("{SERVICE}/create"),
            json!({"url": url, "events": ["test"]}),
        ),
    };
    let mut request = raw().post(emu.base_url().join(&path).unwrap()).json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    send(request).await
}

fn url(n: usize) -> String {
    format!("https://quirks.example/hook/{n}")
}

/// The URL a dialect's subscription object carries.
fn url_of(dialect: Dialect, item: &Value) -> String {
    let field = if dialect == Dialect::Internal {
        "endpoint_url"
    } else {
        "url"
    };
    item[field].as_str().unwrap().to_owned()
}

/// Where the next page starts, in each dialect's terms.
#[derive(Clone, Debug)]
enum Next {
    Offset(usize),
    Cursor(Option<String>),
}

/// One list request of `limit` from `next`; returns the answer's JSON.
async fn list(emu: &RunningEmulator, dialect: Dialect, limit: usize, next: &Next) -> Value {
    let answer = match (dialect, next) {
        (Dialect::Rest, Next::Offset(offset)) => {
            let path = format!("webhook?limit={limit}&offset={offset}");
            send(raw().get(emu.base_url().join(&path).unwrap())).await
        }
        (Dialect::Service, Next::Offset(skip)) => {
            post(
                emu,
                &format!("{SERVICE}/list"),
                json!({"limit": limit, "skip": skip}),
            )
            .await
        }
        (Dialect::Internal, Next::Cursor(cursor)) => {
            post(
                emu,
                &format!("{INTERNAL}/list"),
                json!({"limit": limit, "cursor": cursor}),
            )
            .await
        }
        other => panic!("no such list: {other:?}"),
    };
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()
}

fn items(dialect: Dialect, page: &Value) -> Vec<Value> {
    let field = if dialect == Dialect::Internal {
        "data"
    } else {
        "items"
    };
    page[field].as_array().unwrap().clone()
}

/// The envelope's field names.
fn fields(page: &Value) -> BTreeSet<String> {
    page.as_object().unwrap().keys().cloned().collect()
}

/// Walks every page the way a careful client does: by the cursor or by the number of items
/// actually returned, never by the limit asked for. Returns the URLs in the order seen and
/// the size of each page.
async fn walk(emu: &RunningEmulator, dialect: Dialect, limit: usize) -> (Vec<String>, Vec<usize>) {
    let mut next = match dialect {
        Dialect::Internal => Next::Cursor(None),
        _ => Next::Offset(0),
    };
    let (mut urls, mut sizes) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let page = list(emu, dialect, limit, &next).await;
        let got = items(dialect, &page);
        sizes.push(got.len());
        urls.extend(got.iter().map(|item| url_of(dialect, item)));
        next = match (dialect, &next) {
            (Dialect::Rest, Next::Offset(offset)) => {
                let offset = offset + got.len();
                if got.is_empty() || offset >= page["total"].as_u64().unwrap() as usize {
                    return (urls, sizes);
                }
                Next::Offset(offset)
            }
            (Dialect::Service, Next::Offset(skip)) => {
                if !page["hasNext"].as_bool().unwrap() {
                    return (urls, sizes);
                }
                Next::Offset(skip + got.len())
            }
            (Dialect::Internal, _) => match page["next_cursor"].as_str() {
                Some(cursor) => Next::Cursor(Some(cursor.to_owned())),
                None => return (urls, sizes),
            },
            other => panic!("no such walk: {other:?}"),
        };
    }
    panic!("the list never ended");
}

async fn fill(emu: &RunningEmulator, dialect: Dialect, n: usize) {
    for i in 0..n {
        let answer = create(emu, dialect, &url(i), None).await;
        assert!(answer.status < 300, "{}", answer.body);
    }
}

const CONFLICTING: &str = "https://quirks.example/conflict";

/// A 409 for a duplicate URL and one for an `Idempotency-Key` reused with another body.
async fn two_conflicts(emu: &RunningEmulator, dialect: Dialect) -> [Answer; 2] {
    let first = create(emu, dialect, CONFLICTING, Some("k1")).await;
    assert!(first.status < 300, "{}", first.body);
    let duplicate = create(emu, dialect, CONFLICTING, None).await;
    let reused = create(emu, dialect, "https://quirks.example/other", Some("k1")).await;
    [duplicate, reused]
}

#[tokio::test]
async fn without_quirks_every_answer_is_the_documented_one() {
    let emu = emulator(config()).await;
    assert!(emu.state().quirks().is_none());
    for dialect in Dialect::ALL {
        emu.state().reset();
        let [duplicate, reused] = two_conflicts(&emu, dialect).await;
        assert_eq!((duplicate.status, reused.status), (409, 409));
        let (duplicate, reused) = (duplicate.json(), reused.json());
        let code = |body: &Value| match dialect {
            Dialect::Internal => body["error"]["code"].clone(),
            _ => body["code"].clone(),
        };
        assert!(code(&duplicate).as_str().unwrap().contains("duplicate"));
        assert!(reused.to_string().contains("idempotency"));
        fill(&emu, dialect, 6).await;
        let page = list(
            &emu,
            dialect,
            4,
            &match dialect {
                Dialect::Internal => Next::Cursor(None),
                _ => Next::Offset(0),
            },
        )
        .await;
        let expected: &[&str] = match dialect {
            Dialect::Rest => &["items", "limit", "offset", "total"],
            Dialect::Internal => &["data", "has_more", "next_cursor", "object"],
            Dialect::Service => &["count", "hasNext", "items", "skip"],
        };
        assert_eq!(
            fields(&page),
            expected.iter().map(|f| f.to_string()).collect()
        );
        let first: Vec<String> = items(dialect, &page)
            .iter()
            .map(|i| url_of(dialect, i))
            .collect();
        let expected = [CONFLICTING.to_owned(), url(0), url(1), url(2)];
        assert_eq!(first, expected, "creation order, full page");
    }
    // Unknown routes are bare 404s; the internal dialect's undocumented verbs are served.
    let unknown = post(&emu, &format!("{INTERNAL}/archive"), json!({})).await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, ""));
    let get = post(
        &emu,
        &format!("{INTERNAL}/get"),
        json!({"subscription_id": "wsub_00"}),
    )
    .await;
    assert_eq!(get.json()["error"]["type"], "not_found_error");
    // No proxy in front.
    for _ in 0..25 {
        let answer = send(raw().get(emu.base_url().join("webhook").unwrap())).await;
        assert_eq!(answer.status, 200);
    }
}

#[tokio::test]
async fn bare_409_answers_every_conflict_with_an_empty_body() {
    let emu = quirky("bare-409").await;
    for dialect in Dialect::ALL {
        emu.state().reset();
        for answer in two_conflicts(&emu, dialect).await {
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (409, ""),
                "{dialect}"
            );
        }
    }
}

#[tokio::test]
async fn text_409_answers_every_conflict_in_plain_text() {
    let emu = quirky("text-409").await;
    for dialect in Dialect::ALL {
        emu.state().reset();
        for answer in two_conflicts(&emu, dialect).await {
            assert_eq!((answer.status, answer.body.as_str()), (409, "Conflict"));
            assert!(answer.content_type.unwrap().starts_with("text/plain"));
        }
    }
}

#[tokio::test]
async fn reworded_409_keeps_the_dialects_shape_but_names_neither_url_nor_idempotency() {
    let emu = quirky("reworded-409").await;
    for dialect in Dialect::ALL {
        emu.state().reset();
        for answer in two_conflicts(&emu, dialect).await {
            assert_eq!(answer.status, 409);
            let body = answer.json();
            let code = match dialect {
                Dialect::Rest => &body["code"],
                Dialect::Internal => &body["error"]["code"],
                Dialect::Service => &body["code"],
            };
            assert_eq!(code, "resource_conflict", "{dialect}: {body}");
            let lower = answer.body.to_lowercase();
            for word in ["url", "duplicate", "idempoten"] {
                assert!(!lower.contains(word), "{dialect}: {lower}");
            }
        }
    }
}

#[tokio::test]
async fn mixed_409_cycles_through_empty_text_and_reworded_bodies() {
    let emu = quirky("mixed-409").await;
    let mut bodies = Vec::new();
    for n in 0..3 {
        let first = create(&emu, Dialect::Rest, &url(n), None).await;
        assert_eq!(first.status, 201);
        let again = create(&emu, Dialect::Rest, &url(n), None).await;
        assert_eq!(again.status, 409);
        bodies.push(again.body);
    }
    assert_eq!(bodies[0], "");
    assert_eq!(bodies[1], "Conflict");
    assert_eq!(
        serde_json::from_str::<Value>(&bodies[2]).unwrap()["code"],
        "resource_conflict"
    );
}

#[tokio::test]
async fn unpaged_lists_answer_every_subscription_in_one_bare_envelope() {
    let emu = quirky("unpaged-lists").await;
    for dialect in Dialect::ALL {
        emu.state().reset();
        fill(&emu, dialect, 25).await;
        let start = match dialect {
            Dialect::Internal => Next::Cursor(None),
            _ => Next::Offset(0),
        };
        let page = list(&emu, dialect, 5, &start).await;
        let only = if dialect == Dialect::Internal {
            "data"
        } else {
            "items"
        };
        assert_eq!(
            fields(&page),
            BTreeSet::from([only.to_owned()]),
            "{dialect}"
        );
        let urls: Vec<String> = items(dialect, &page)
            .iter()
            .map(|i| url_of(dialect, i))
            .collect();
        assert_eq!(urls, (0..25).map(url).collect::<Vec<_>>(), "{dialect}");
    }
}

#[tokio::test]
async fn short_pages_are_smaller_than_asked_and_reversed_but_the_cursor_finds_everything() {
    let emu = quirky("short-pages").await;
    for dialect in Dialect::ALL {
        emu.state().reset();
        fill(&emu, dialect, 9).await;
        let (urls, sizes) = walk(&emu, dialect, 4).await;
        assert!(sizes.iter().all(|n| *n <= 2), "{dialect}: {sizes:?}");
        assert_eq!(
            urls[..2],
            [url(1), url(0)],
            "{dialect}: reversed within a page"
        );
        let seen: BTreeSet<String> = urls.iter().cloned().collect();
        assert_eq!(seen.len(), urls.len(), "{dialect}: no subscription twice");
        assert_eq!(seen, (0..9).map(url).collect(), "{dialect}");
    }
}

#[tokio::test]
async fn json_404_answers_unknown_routes_with_a_json_body() {
    let emu = quirky("json-404").await;
    let unknown = post(&emu, &format!("{INTERNAL}/archive"), json!({})).await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(unknown.json()["statusCode"], 404);
    // Known routes are untouched.
    let get = post(
        &emu,
        &format!("{INTERNAL}/get"),
        json!({"subscription_id": "wsub_00"}),
    )
    .await;
    assert_eq!(get.json()["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn documented_only_drops_the_undocumented_verbs_and_with_json_404_they_answer_json() {
    let undocumented = [
        format!("{INTERNAL}/get"),
        format!("{INTERNAL}/list"),
        format!("{INTERNAL}/delete"),
        format!("{INTERNAL}/trigger-test"),
        "webhook/3f1c0000-0000-4000-8000-000000000001/test".to_owned(),
    ];
    let bare = quirky("documented-only").await;
    let created = create(&bare, Dialect::Internal, &url(1), None).await;
    assert_eq!(created.status, 200, "create is documented");
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let update = post(
        &bare,
        &format!("{INTERNAL}/update"),
        json!({"subscription_id": id, "status": "inactive"}),
    )
    .await;
    assert_eq!(update.json()["status"], "inactive", "update is served too");
    for path in &undocumented {
        let answer = post(&bare, path, json!({"subscription_id": id})).await;
        assert_eq!((answer.status, answer.body.as_str()), (404, ""), "{path}");
    }
    let json = quirky("documented-only,json-404").await;
    for path in &undocumented {
        let answer = post(&json, path, json!({"subscription_id": id})).await;
        assert_eq!(answer.status, 404, "{path}");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains(path.as_str())
        );
    }
}

#[tokio::test]
async fn proxy_502_answers_every_nth_request_with_html_that_never_reaches_the_model() {
    let emu = quirky("proxy-502=3").await;
    let mut statuses = Vec::new();
    for n in 0..9 {
        let answer = create(&emu, Dialect::Service, &url(n), None).await;
        if answer.status == 502 {
            assert!(answer.content_type.unwrap().starts_with("text/html"));
            assert!(answer.body.contains("502 Bad Gateway"));
        }
        statuses.push(answer.status);
    }
    assert_eq!(statuses, [200, 200, 502, 200, 200, 502, 200, 200, 502]);
    assert_eq!(emu.state().subscriptions().len(), 6);
    // The admin API is not behind the proxy.
    for _ in 0..5 {
        assert_eq!(
            send(raw().get(emu.base_url().join("admin/quirks").unwrap()))
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn no_idempotency_ignores_the_key_like_the_config_switch() {
    for config in [
        config().with_quirks(Quirks::parse("no-idempotency").unwrap()),
        config().idempotency(false),
    ] {
        let emu = emulator(config).await;
        assert!(!emu.state().idempotency());
        for n in 0..2 {
            let answer = create(&emu, Dialect::Rest, &url(n), Some("same-key")).await;
            assert_eq!(answer.status, 201);
        }
        assert_eq!(emu.state().subscriptions().len(), 2);
    }
}

#[tokio::test]
async fn unfriendly_turns_on_every_convergent_quirk_and_the_admin_api_shows_them() {
    let emu = quirky("unfriendly").await;
    assert_eq!(emu.state().quirks(), Quirks::unfriendly());
    let shown = send(raw().get(emu.base_url().join("admin/quirks").unwrap())).await;
    assert_eq!(
        shown.json()["quirks"],
        "mixed-409,short-pages,json-404,proxy-502=10,no-idempotency"
    );
    // The undocumented verbs stay: a correct client converges against this profile.
    let list = post(&emu, &format!("{INTERNAL}/list"), json!({})).await;
    assert_eq!(list.status, 200);
    let friendly = emulator(EmulatorConfig::default()).await;
    let shown = send(raw().get(friendly.base_url().join("admin/quirks").unwrap())).await;
    assert_eq!(shown.json(), json!({"quirks": "none", "profiles": []}));
}

#[test]
fn the_binary_reads_quirks_from_the_environment() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivy-emulator"))
        .args(["--listen", "127.0.0.1:0"])
        .env("IVY_EMULATOR_QUIRKS", "bare-409,proxy-502=4")
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
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let shown: Value = runtime.block_on(async {
        raw()
            .get(format!("{base}/admin/quirks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(shown["quirks"], "bare-409,proxy-502=4");
}
