//! How to reach Ivy: the client configuration, its default timeouts, and the one shared
//! `reqwest::Client`.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::ivy::dialect::Dialect;
use crate::ivy::redacted::ApiKey;

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
