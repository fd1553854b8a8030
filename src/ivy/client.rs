//! What every dialect shares: the client configuration, the one HTTP transport (API key header,
//! JSON bodies, `Idempotency-Key`, per-request timeout) and the mapping of HTTP answers to
//! [`IvyError`]. The dialect modules add only paths, wire types and error-body parsing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::dialect::Dialect;
use super::error::{ConflictKind, IvyError};
use super::redacted::ApiKey;
use super::{IdempotencyKey, SharedIvyApi};

pub(crate) mod verbs;

/// Longest piece of Ivy's own text (a message, or a snippet of an unparseable body) that is
/// copied into an error; error messages end up in conditions and logs.
const MAX_ERROR_TEXT: usize = 300;

/// Default connect timeout for [`http_client`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default whole-request timeout for [`http_client`] and [`ClientConfig::new`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach Ivy.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Scheme, host and optional path prefix, e.g. `https://api.getivy.de` or the emulator's
    /// `http://127.0.0.1:PORT/`. Dialect paths are appended to it.
    pub base_url: Url,
    /// Sent as `X-Ivy-Api-Key`.
    pub api_key: ApiKey,
    /// When set, the key is read again from this file whenever the file changes, so a key
    /// rotated in a mounted Secret is used without a restart; `api_key` is the key until then.
    pub api_key_file: Option<PathBuf>,
    pub dialect: Dialect,
    /// Used by [`http_client`]; kept here so one config describes the whole client.
    pub connect_timeout: Duration,
    /// Applied to every request, on top of whatever the shared `reqwest::Client` has.
    pub request_timeout: Duration,
    pub user_agent: String,
}

impl ClientConfig {
    /// A config with the default timeouts and a user agent naming this crate.
    pub fn new(base_url: Url, api_key: ApiKey, dialect: Dialect) -> Self {
        Self {
            base_url,
            api_key,
            api_key_file: None,
            dialect,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            user_agent: concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// The shared HTTP client could not be built (e.g. the TLS backend failed to initialise).
#[derive(Debug, thiserror::Error)]
#[error("failed to build the HTTP client for Ivy")]
pub struct HttpClientError(#[source] reqwest::Error);

/// The one `reqwest::Client` the process shares: timeouts, no redirects (Ivy's API never
/// redirects, and following one could send the API key elsewhere).
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, HttpClientError> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HttpClientError)
}

/// The [`super::IvyApi`] implementation for `config.dialect`, sharing `http`.
pub fn build_ivy_client(config: ClientConfig, http: reqwest::Client) -> SharedIvyApi {
    let dialect = config.dialect;
    let transport = Transport::new(config, http);
    match dialect {
        Dialect::Rest => Arc::new(super::rest::RestClient::new(transport)),
        Dialect::Internal => Arc::new(super::internal::InternalClient::new(transport)),
        Dialect::Service => Arc::new(super::service::ServiceClient::new(transport)),
    }
}

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

/// The API key, read again from its file when the file changes. The kubelet replaces a mounted
/// Secret's files when the Secret changes, so rotating the key in the Secret reaches the operator
/// within the kubelet's sync period.
pub(crate) struct KeyCell {
    file: Option<PathBuf>,
    current: RwLock<(Option<FileStamp>, ApiKey)>,
}

/// What tells a changed file from the same one: a replaced file has a new inode, and
/// modification times alone can repeat within the clock's granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl KeyCell {
    fn new(key: ApiKey, file: Option<PathBuf>) -> Self {
        let stamp = file.as_deref().and_then(file_stamp);
        Self {
            file,
            current: RwLock::new((stamp, key)),
        }
    }

    /// The key to send now. A file that cannot be read, or reads empty, keeps the last key.
    fn current(&self) -> ApiKey {
        if let Some(path) = &self.file {
            let modified = file_stamp(path);
            let stale = modified.is_some() && self.read().0 != modified;
            if stale
                && let Ok(text) = std::fs::read_to_string(path)
                && !text.trim().is_empty()
            {
                let mut current = self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *current = (modified, ApiKey::new(text.trim()));
                tracing::info!(file = %path.display(), "read the changed Ivy API key file");
            }
        }
        self.read().1.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Option<FileStamp>, ApiKey)> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
        inode: metadata.ino(),
    })
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

    /// [`Transport::send`], with a non-2xx answer turned into the error `how` reads it as.
    pub async fn exchange(
        &self,
        call: Call<'_>,
        how: &Classify<'_>,
    ) -> Result<RawResponse, IvyError> {
        let response = self.send(call).await?;
        if response.is_success() {
            Ok(response)
        } else {
            Err(classify(self, &response, how))
        }
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

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
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

/// What a dialect could read from an error body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ErrorBody {
    pub message: Option<String>,
    /// Machine-readable code (`invalid_endpoint_url`, `duplicate_url`, …).
    pub code: Option<String>,
    /// The error family: `type` in `internal`, `category` in `service`, `error` in `rest`.
    pub kind: Option<String>,
}

/// How a dialect wants a non-2xx answer read.
pub(crate) struct Classify<'a> {
    pub dialect: Dialect,
    pub operation: &'static str,
    /// The id the call was about, for [`IvyError::NotFound`].
    pub id: &'a str,
    /// Parses the dialect's error body; `None` when the body is not in the dialect's shape.
    pub parse_error: fn(&[u8]) -> Option<ErrorBody>,
    /// Treat a 404/405 without the dialect's error body as a missing route
    /// ([`IvyError::Unsupported`]) rather than a missing subscription.
    pub route_may_be_missing: bool,
}

/// Maps a non-2xx answer to an [`IvyError`].
pub(crate) fn classify(
    transport: &Transport,
    response: &RawResponse,
    how: &Classify<'_>,
) -> IvyError {
    let parsed = (how.parse_error)(&response.body);
    let status = response.status.as_u16();
    let message = || -> String {
        match parsed.as_ref().and_then(|p| p.message.as_deref()) {
            Some(message) => transport.scrub(message),
            None => body_snippet(transport, response),
        }
    };
    match status {
        400 | 422 => IvyError::Validation {
            message: message(),
            code: parsed.as_ref().and_then(|p| p.code.clone()),
        },
        401 | 403 => IvyError::Auth { status },
        404 | 405 if how.route_may_be_missing && parsed.is_none() => IvyError::Unsupported {
            dialect: how.dialect.as_str(),
            operation: how.operation,
        },
        // A 404 to a call about no particular subscription (create, list) cannot mean "no
        // such subscription".
        404 if how.id.is_empty() => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
        404 => IvyError::NotFound {
            id: how.id.to_owned(),
        },
        409 => IvyError::Conflict {
            message: message(),
            kind: conflict_kind(parsed.as_ref()),
        },
        429 => IvyError::RateLimited {
            retry_after: response.retry_after,
        },
        408 | 500..=599 => IvyError::Transient {
            message: format!("HTTP {status} from {}: {}", how.operation, message()),
        },
        _ => IvyError::UnexpectedStatus {
            status,
            message: message(),
        },
    }
}

fn conflict_kind(parsed: Option<&ErrorBody>) -> ConflictKind {
    let Some(parsed) = parsed else {
        return ConflictKind::Other;
    };
    let labels = [&parsed.code, &parsed.kind];
    let mentions = |needle: &str| {
        labels.iter().any(|l| {
            l.as_deref()
                .is_some_and(|l| l.to_ascii_lowercase().contains(needle))
        })
    };
    if mentions("idempotency") {
        ConflictKind::IdempotencyKeyReused
    } else if mentions("duplicate") || mentions("url") || mentions("already_exists") {
        ConflictKind::DuplicateUrl
    } else {
        ConflictKind::Other
    }
}

fn body_snippet(transport: &Transport, response: &RawResponse) -> String {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return format!("HTTP {} with an empty body", response.status.as_u16());
    }
    transport.scrub(&String::from_utf8_lossy(&response.body))
}

/// Decodes a 2xx body into a dialect's wire type; anything else is
/// [`IvyError::MalformedResponse`]. The message never repeats body values, because a
/// misplaced field could hold the signing secret.
pub(crate) fn decode<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
) -> Result<T, IvyError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Err(IvyError::MalformedResponse {
            operation,
            message: format!("HTTP {} with an empty body", response.status.as_u16()),
        });
    }
    serde_json::from_slice(&response.body).map_err(|e| IvyError::MalformedResponse {
        operation,
        message: describe_json_error(&e),
    })
}

fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", err.line(), err.column());
    match err.classify() {
        Category::Syntax => format!("the body is not JSON ({at})"),
        Category::Eof => format!("the JSON body ends early ({at})"),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            let text = err.to_string();
            // serde names missing fields without quoting values; every other data error may
            // quote a value from the body, so only its position is reported.
            if text.starts_with("missing field") {
                text
            } else {
                format!("unexpected JSON shape ({at})")
            }
        }
    }
}

/// Parses `body` as JSON without failing: error-body parsers use it.
pub(crate) fn json_value(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// A string field of a JSON object, if present.
pub(crate) fn str_field(value: &serde_json::Value, name: &str) -> Option<String> {
    value.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

/// An idempotency key for the follow-up call a create needs in dialects that cannot set every
/// field at creation (e.g. `active: false`): derived from the create's key so a replayed
/// create replays the follow-up too.
pub(crate) fn follow_up_key(key: &IdempotencyKey, suffix: &str) -> IdempotencyKey {
    let mut value = key.as_str().to_owned();
    let room = IdempotencyKey::MAX_LEN.saturating_sub(suffix.len() + 1);
    if value.len() > room {
        // Keys are visible ASCII, so any byte index is a char boundary.
        value.truncate(room);
    }
    value.push(':');
    value.push_str(suffix);
    IdempotencyKey::new(value).unwrap_or_else(|_| IdempotencyKey::random())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A one-route HTTP stub for the dialect modules' unit tests: answers every request with a
    //! fixed status, headers and body, and records what it was sent.

    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;

    use super::*;

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
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| {
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
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;

    fn no_parse(_: &[u8]) -> Option<ErrorBody> {
        None
    }

    fn how(route_may_be_missing: bool) -> Classify<'static> {
        Classify {
            dialect: Dialect::Internal,
            operation: "get",
            id: "abc",
            parse_error: no_parse,
            route_may_be_missing,
        }
    }

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

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

    #[test]
    fn status_codes_map_to_error_classes() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        assert!(matches!(
            classify(&t, &raw(400, ""), &how(false)),
            IvyError::Validation { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(401, ""), &how(false)),
            IvyError::Auth { status: 401 }
        ));
        assert!(matches!(
            classify(&t, &raw(403, ""), &how(false)),
            IvyError::Auth { status: 403 }
        ));
        assert!(
            matches!(classify(&t, &raw(404, ""), &how(false)), IvyError::NotFound { id } if id == "abc")
        );
        assert!(matches!(
            classify(&t, &raw(404, ""), &how(true)),
            IvyError::Unsupported {
                operation: "get",
                ..
            }
        ));
        assert!(matches!(
            classify(&t, &raw(405, ""), &how(true)),
            IvyError::Unsupported { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(409, ""), &how(false)),
            IvyError::Conflict {
                kind: ConflictKind::Other,
                ..
            }
        ));
        assert!(matches!(
            classify(&t, &raw(502, "<html>"), &how(false)),
            IvyError::Transient { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(408, ""), &how(false)),
            IvyError::Transient { .. }
        ));
        assert!(matches!(
            classify(&t, &raw(418, ""), &how(false)),
            IvyError::UnexpectedStatus { status: 418, .. }
        ));
    }

    #[test]
    fn a_rate_limit_keeps_its_retry_after() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        let mut response = raw(429, "");
        response.retry_after = Some(Duration::from_secs(3));
        assert!(matches!(
            classify(&t, &response, &how(false)),
            IvyError::RateLimited { retry_after: Some(d) } if d == Duration::from_secs(3)
        ));
    }

    #[test]
    fn error_text_is_bounded_and_never_shows_the_api_key() {
        let t = transport("127.0.0.1:9".parse().unwrap());
        let body = format!("key test-key-123 {}", "x".repeat(5000));
        let err = classify(&t, &raw(500, &body), &how(false));
        let text = err.to_string();
        assert!(!text.contains("test-key-123"), "{text}");
        assert!(text.len() < 1000, "{}", text.len());
    }

    #[test]
    fn conflicts_are_told_apart_by_code_or_kind() {
        let body = |code: &str| ErrorBody {
            code: Some(code.into()),
            ..Default::default()
        };
        assert_eq!(
            conflict_kind(Some(&body("idempotency_error"))),
            ConflictKind::IdempotencyKeyReused
        );
        assert_eq!(
            conflict_kind(Some(&body("duplicate_url"))),
            ConflictKind::DuplicateUrl
        );
        assert_eq!(
            conflict_kind(Some(&body("something_else"))),
            ConflictKind::Other
        );
        assert_eq!(conflict_kind(None), ConflictKind::Other);
    }

    #[test]
    fn decode_rejects_empty_non_json_and_misshapen_bodies_without_echoing_values() {
        #[derive(serde::Deserialize, Debug)]
        struct Thing {
            #[allow(dead_code)]
            id: u32,
        }
        for (body, expect) in [
            ("", "empty body"),
            ("  \n", "empty body"),
            ("<html>oops</html>", "not JSON"),
            ("{\"id\": 1", "ends early"),
            ("{}", "missing field `id`"),
            ("{\"id\": \"whsec_secret\"}", "unexpected JSON shape"),
        ] {
            let err = decode::<Thing>("get", &raw(200, body)).unwrap_err();
            let text = err.to_string();
            assert!(matches!(
                err,
                IvyError::MalformedResponse {
                    operation: "get",
                    ..
                }
            ));
            assert!(text.contains(expect), "{body:?} -> {text}");
            assert!(!text.contains("whsec_secret"), "{text}");
        }
    }

    #[test]
    fn follow_up_keys_stay_valid_and_deterministic() {
        let long = IdempotencyKey::new("k".repeat(255)).unwrap();
        let a = follow_up_key(&long, "deactivate");
        assert!(a.as_str().len() <= 255);
        assert!(a.as_str().ends_with(":deactivate"));
        assert_eq!(a, follow_up_key(&long, "deactivate"));
    }
}
