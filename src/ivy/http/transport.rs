//! The one way a request reaches Ivy: the API-key header, JSON bodies, `Idempotency-Key`, the
//! per-request timeout, and an answer read in full. Whether the answer's status means success is
//! for [`super::classify`] to say; only failing to get an answer at all is an error here.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use url::Url;

use super::config::ClientConfig;
use super::key_file::KeyCell;
use crate::ivy::error::{IvyError, error_chain};
use crate::ivy::types::IdempotencyKey;

/// Longest piece of Ivy's own text (a message, or a snippet of an unparseable body) that is
/// copied into an error; error messages end up in conditions and logs.
const MAX_ERROR_TEXT: usize = 300;

/// An HTTP answer, read in full, before classification.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

/// One request to send.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Path segments appended to the base URL (each is percent-encoded).
    pub segments: &'a [&'a str],
    pub query: &'a [(&'a str, String)],
    /// The JSON body, already encoded (field order as the wire type declares it).
    pub body: Option<Vec<u8>>,
    pub idempotency_key: Option<&'a IdempotencyKey>,
}

impl<'a> Call<'a> {
    pub fn new(method: Method, segments: &'a [&'a str]) -> Self {
        Self {
            method,
            segments,
            query: &[],
            body: None,
            idempotency_key: None,
        }
    }

    pub fn json(mut self, body: impl Serialize) -> Result<Self, IvyError> {
        let value = serde_json::to_vec(&body).map_err(|e| IvyError::InvalidRequest {
            message: format!("cannot encode the request body: {e}"),
        })?;
        self.body = Some(value);
        Ok(self)
    }

    pub fn query(mut self, query: &'a [(&'a str, String)]) -> Self {
        self.query = query;
        self
    }

    pub fn idempotency_key(mut self, key: &'a IdempotencyKey) -> Self {
        self.idempotency_key = Some(key);
        self
    }
}

/// The plumbing every dialect sends its requests through.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    base_url: Url,
    api_key: Arc<KeyCell>,
    user_agent: String,
    request_timeout: Duration,
}

impl Transport {
    pub fn new(config: ClientConfig, http: reqwest::Client) -> Self {
        Self {
            http,
            base_url: config.base_url,
            api_key: Arc::new(KeyCell::new(config.api_key, config.api_key_file)),
            user_agent: config.user_agent,
            request_timeout: config.request_timeout,
        }
    }

    fn url(&self, call: &Call<'_>) -> Result<Url, IvyError> {
        let mut url = self.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| IvyError::InvalidRequest {
                    message: "the Ivy base URL cannot carry a path".into(),
                })?;
            segments.pop_if_empty();
            segments.extend(call.segments);
        }
        if !call.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in call.query {
                pairs.append_pair(name, value);
            }
        }
        Ok(url)
    }

    /// Sends one request and reads the whole answer. Only failures to get an answer at all are
    /// errors here (all [`IvyError::Transient`]); statuses are classified by the caller.
    pub async fn send(&self, call: Call<'_>) -> Result<RawResponse, IvyError> {
        let url = self.url(&call)?;
        let mut request = self
            .http
            .request(call.method, url)
            .timeout(self.request_timeout)
            .header(header::USER_AGENT, &self.user_agent)
            .header(header::ACCEPT, "application/json")
            .header("X-Ivy-Api-Key", self.api_key.current().expose());
        if let Some(key) = call.idempotency_key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        if let Some(body) = call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await.map_err(transport_error)?.to_vec();
        Ok(RawResponse {
            status,
            retry_after,
            body,
        })
    }

    /// Ivy's text with the API key blanked out, bounded in length.
    pub fn scrub(&self, text: &str) -> String {
        let key = self.api_key.current();
        let key = key.expose();
        let text = if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "<redacted>")
        };
        bounded(&text)
    }
}

/// A reqwest failure as a transient error. reqwest's own message names the URL (which is
/// harmless: the key travels in a header) but not the headers.
fn transport_error(err: reqwest::Error) -> IvyError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "the connection broke while reading the answer"
    } else if err.is_request() {
        "the request could not be sent"
    } else {
        "HTTP error"
    };
    IvyError::Transient {
        message: format!("{what}: {}", bounded(&error_chain(&err))),
    }
}

/// `text` cut to [`MAX_ERROR_TEXT`] characters, control characters replaced.
pub(crate) fn bounded(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_ERROR_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_ERROR_TEXT {
        out.push('…');
    }
    out
}

/// `Retry-After` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a valid RFC 2822 date.
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let delta = when.duration_since(jiff::Timestamp::now());
    Some(Duration::try_from(delta).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn every_request_carries_the_key_agent_and_idempotency_key() {
        let stub = stub(vec![answer(200, "{}")]).await;
        let transport = transport(stub.addr);
        let key = IdempotencyKey::new("k-1").unwrap();
        let call = Call::new(Method::POST, &["a b", "c"])
            .json(serde_json::json!({"x": 1}))
            .unwrap()
            .idempotency_key(&key);
        transport.send(call).await.unwrap();
        let seen = stub.seen.lock().unwrap()[0].clone();
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.path_and_query, "/a%20b/c");
        assert_eq!(seen.headers["x-ivy-api-key"], "test-key-123");
        assert_eq!(seen.headers["idempotency-key"], "k-1");
        assert_eq!(seen.headers["content-type"], "application/json");
        assert!(
            seen.headers["user-agent"]
                .to_str()
                .unwrap()
                .starts_with("ivy-webhook-operator/")
        );
        assert_eq!(seen.body, br#"{"x":1}"#);
    }

    #[tokio::test]
    async fn a_base_url_path_prefix_is_kept() {
        let stub = stub(vec![answer(200, "{}")]).await;
        let mut transport = transport(stub.addr);
        transport.base_url = format!("http://{}/prefix", stub.addr).parse().unwrap();
        let query = [("limit", "100".to_owned())];
        transport
            .send(Call::new(Method::GET, &["webhook"]).query(&query))
            .await
            .unwrap();
        assert_eq!(
            stub.seen.lock().unwrap()[0].path_and_query,
            "/prefix/webhook?limit=100"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let err = transport(addr)
            .send(Call::new(Method::GET, &["x"]))
            .await
            .unwrap_err();
        assert!(matches!(err, IvyError::Transient { .. }), "{err:?}");
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header =
            jiff::fmt::rfc2822::to_string(&later.to_zoned(jiff::tz::TimeZone::UTC)).unwrap();
        let parsed = parse_retry_after(&header).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
