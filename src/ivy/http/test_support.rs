//! A one-route HTTP stub for the client's unit tests: answers every request with canned
//! statuses, headers and bodies in order, and records what it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;

use super::config::{ClientConfig, http_client};
use super::transport::Transport;
use crate::ivy::dialect::Dialect;
use crate::ivy::redacted::ApiKey;

/// What the stub saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub struct Stub {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One canned answer; answers are served in order, the last one repeats.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// A JSON answer.
pub fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: vec![("content-type", "application/json".into())],
        body: body.to_owned(),
    }
}

pub async fn stub(answers: Vec<Answer>) -> Stub {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(answers));
    let seen2 = seen.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let seen = seen2.clone();
            let answers = answers.clone();
            async move {
                seen.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    path_and_query: uri
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    headers,
                    body: body.to_vec(),
                });
                let answer = {
                    let mut answers = answers.lock().unwrap();
                    if answers.len() > 1 {
                        answers.remove(0)
                    } else {
                        answers[0].clone()
                    }
                };
                let mut response =
                    (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
                for (name, value) in answer.headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Stub { addr, seen, task }
}

pub fn transport(addr: SocketAddr) -> Transport {
    let config = ClientConfig::new(
        format!("http://{addr}/").parse().unwrap(),
        ApiKey::new("test-key-123"),
        Dialect::Rest,
    );
    let http = http_client(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
    Transport::new(config, http)
}
