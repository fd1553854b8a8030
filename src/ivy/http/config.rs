//! How to reach Ivy: the client configuration, its default timeouts, and the one shared
//! `reqwest::Client`, which trusts webpki's roots, the system's CA store and an optional extra
//! CA bundle (a private CA, or a TLS-inspecting proxy's).

use std::path::{Path, PathBuf};
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
    /// A PEM file of CA certificates trusted beside webpki's roots and the system's store
    /// (`--ivy-ca-file`).
    pub ca_file: Option<PathBuf>,
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
            ca_file: None,
        }
    }

    /// The shared `reqwest::Client` for this configuration: its timeouts, and its `ca_file`
    /// trusted on top of webpki's roots and the system's CA store.
    pub fn http_client(&self) -> Result<reqwest::Client, HttpClientError> {
        build_http_client(
            self.connect_timeout,
            self.request_timeout,
            self.ca_file.as_deref(),
        )
    }
}

/// The shared HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("failed to build the HTTP client for Ivy")]
    Build(#[source] reqwest::Error),
    #[error("failed to read the CA file {path}")]
    ReadCaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA file {path} is not a PEM bundle of certificates")]
    ParseCaFile {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("the CA file {path} holds no certificate")]
    EmptyCaFile { path: PathBuf },
}

/// The one `reqwest::Client` the process shares: timeouts, no redirects (Ivy's API never
/// redirects, and following one could send the API key elsewhere), webpki's roots and the
/// system's CA store (`SSL_CERT_FILE` / `SSL_CERT_DIR` point elsewhere).
pub fn http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, HttpClientError> {
    build_http_client(connect_timeout, request_timeout, None)
}

fn build_http_client(
    connect_timeout: Duration,
    request_timeout: Duration,
    ca_file: Option<&Path>,
) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(HttpClientError::Build)
}

/// The certificates of a PEM bundle (one or more `BEGIN CERTIFICATE` blocks).
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, HttpClientError> {
    let pem = std::fs::read(path).map_err(|source| HttpClientError::ReadCaFile {
        path: path.to_owned(),
        source,
    })?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
        HttpClientError::ParseCaFile {
            path: path.to_owned(),
            source,
        }
    })?;
    if certificates.is_empty() {
        return Err(HttpClientError::EmptyCaFile {
            path: path.to_owned(),
        });
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    //! The client against the emulator serving HTTPS with a certificate from a CA made here.
    use super::*;
    use crate::emulator::{Emulator, EmulatorConfig, RunningEmulator, TlsIdentity};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    /// A fresh CA (PEM) and the emulator serving a certificate it signed for 127.0.0.1.
    async fn emulator_with_private_ca() -> (String, RunningEmulator) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let config = EmulatorConfig::default().with_tls(TlsIdentity {
            cert_chain_pem: server.pem().into_bytes(),
            key_pem: server_key.serialize_pem().into_bytes(),
        });
        let emulator = Emulator::spawn(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        (ca.pem(), emulator)
    }

    fn config_for(emulator: &RunningEmulator, ca_file: Option<PathBuf>) -> ClientConfig {
        let mut config = ClientConfig::new(
            emulator.base_url(),
            ApiKey::new(crate::emulator::DEFAULT_API_KEY),
            Dialect::Rest,
        );
        config.ca_file = ca_file;
        config
    }

    async fn healthz(client: &reqwest::Client, emulator: &RunningEmulator) -> reqwest::Result<u16> {
        let url = emulator.base_url().join("healthz").unwrap();
        Ok(client.get(url).send().await?.status().as_u16())
    }

    #[tokio::test]
    async fn a_server_certificate_from_an_unknown_ca_is_refused() {
        let (_, emulator) = emulator_with_private_ca().await;
        assert_eq!(emulator.base_url().scheme(), "https");
        let client = config_for(&emulator, None).http_client().unwrap();
        let error = healthz(&client, &emulator).await.unwrap_err();
        assert!(error.is_connect(), "{error:?}");
    }

    #[tokio::test]
    async fn the_ca_file_makes_the_private_ca_trusted() {
        let (ca_pem, emulator) = emulator_with_private_ca().await;
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let client = config_for(&emulator, Some(ca_file)).http_client().unwrap();
        assert_eq!(healthz(&client, &emulator).await.unwrap(), 200);
    }

    #[test]
    fn a_missing_ca_file_is_an_error_naming_it() {
        let error = build_http_client(
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_REQUEST_TIMEOUT,
            Some(Path::new("/nonexistent/ca.crt")),
        )
        .unwrap_err();
        assert!(
            matches!(error, HttpClientError::ReadCaFile { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("/nonexistent/ca.crt"));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, "not a certificate\n").unwrap();
        let error = build_http_client(
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_REQUEST_TIMEOUT,
            Some(&ca_file),
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                HttpClientError::EmptyCaFile { .. } | HttpClientError::ParseCaFile { .. }
            ),
            "{error:?}"
        );
    }
}
