//! How an emulator is set up: [`EmulatorConfig`], its builder methods and its defaults
//! (Ivy's delivery retry schedule, one API key, no quirks).

use std::time::Duration;

use super::quirks::Quirks;
use super::tls::TlsIdentity;

/// The API key [`EmulatorConfig::default`] accepts.
pub const DEFAULT_API_KEY: &str = "ivy-emulator-api-key";

/// How many mutating requests the log keeps by default (the oldest are dropped first).
pub const DEFAULT_MUTATION_LOG_CAPACITY: usize = 50_000;

/// Ivy's documented schedule: delays before retry 1, 2, … (15 retries, the last nine at the
/// documented "…" of about an hour).
pub fn ivy_retry_schedule() -> Vec<Duration> {
    let mut schedule: Vec<Duration> = [30, 22, 140, 541, 1426, 3200]
        .into_iter()
        .map(Duration::from_secs)
        .collect();
    schedule.extend(std::iter::repeat_n(Duration::from_secs(3600), 9));
    schedule
}

/// How the emulator behaves. `Default` is Ivy's behaviour with one API key,
/// [`DEFAULT_API_KEY`], and no quirks. Its `Debug` output hides the keys and the secret.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Accepted `X-Ivy-Api-Key` values. Each key is its own merchant: it sees only its own
    /// subscriptions, and URLs and idempotency keys are unique per key.
    pub api_keys: Vec<String>,
    /// Accept `http://` subscription URLs, but only with a loopback host.
    pub allow_http_urls: bool,
    /// Deliver to `https://<loopback>:PORT/…` URLs over plain http to the same host and port
    /// (end-to-end receivers are plain-http loopback servers; the CRD admits only https).
    pub plain_http_to_loopback: bool,
    /// Delays before each retry of a failed delivery; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// Where to answer less friendly than documented. `quirks.no_idempotency` is the one
    /// switch for `Idempotency-Key` support (see [`EmulatorConfig::idempotency`]).
    pub quirks: Quirks,
    /// The merchant app's signing secret (signs deliveries to subscriptions created through
    /// `service`); a random `whsec_` value when `None`.
    pub app_signing_secret: Option<String>,
    /// Timeout of one delivery attempt.
    pub delivery_timeout: Duration,
    /// Allow listening on a non-loopback address (off: `Emulator::spawn` refuses).
    pub allow_non_loopback_listen: bool,
    /// How many mutating requests the admin API's log keeps.
    pub mutation_log_capacity: usize,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsIdentity>,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field(
                "api_keys",
                &format_args!("<{} redacted>", self.api_keys.len()),
            )
            .field("allow_http_urls", &self.allow_http_urls)
            .field("plain_http_to_loopback", &self.plain_http_to_loopback)
            .field("retry_schedule", &self.retry_schedule)
            .field("quirks", &format_args!("{}", self.quirks))
            .field(
                "app_signing_secret",
                &self.app_signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("delivery_timeout", &self.delivery_timeout)
            .field("allow_non_loopback_listen", &self.allow_non_loopback_listen)
            .field("mutation_log_capacity", &self.mutation_log_capacity)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            api_keys: vec![DEFAULT_API_KEY.to_owned()],
            allow_http_urls: false,
            plain_http_to_loopback: false,
            retry_schedule: ivy_retry_schedule(),
            quirks: Quirks::none(),
            app_signing_secret: None,
            delivery_timeout: Duration::from_secs(10),
            allow_non_loopback_listen: false,
            mutation_log_capacity: DEFAULT_MUTATION_LOG_CAPACITY,
            tls: None,
        }
    }
}

impl EmulatorConfig {
    /// Serve HTTPS with this certificate chain and key.
    pub fn with_tls(mut self, identity: TlsIdentity) -> Self {
        self.tls = Some(identity);
        self
    }

    /// Accept exactly this API key (replacing the default one).
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys = vec![key.into()];
        self
    }

    /// Accept this API key too (another merchant).
    pub fn add_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_keys.push(key.into());
        self
    }

    pub fn allow_http_urls(mut self, allow: bool) -> Self {
        self.allow_http_urls = allow;
        self
    }

    pub fn plain_http_to_loopback(mut self, plain: bool) -> Self {
        self.plain_http_to_loopback = plain;
        self
    }

    pub fn retry_schedule(mut self, schedule: Vec<Duration>) -> Self {
        self.retry_schedule = schedule;
        self
    }

    /// Honour `Idempotency-Key` or not: the same switch as the `no-idempotency` quirk.
    pub fn idempotency(mut self, enabled: bool) -> Self {
        self.quirks.no_idempotency = !enabled;
        self
    }

    /// Whether `Idempotency-Key` is honoured at start (and after a reset).
    pub fn honours_idempotency(&self) -> bool {
        !self.quirks.no_idempotency
    }

    /// Run with these quirks, replacing any set before (e.g. `Quirks::parse("bare-409")?`).
    pub fn with_quirks(mut self, quirks: Quirks) -> Self {
        self.quirks = quirks;
        self
    }

    pub fn app_signing_secret(mut self, secret: impl Into<String>) -> Self {
        self.app_signing_secret = Some(secret.into());
        self
    }

    pub fn mutation_log_capacity(mut self, entries: usize) -> Self {
        self.mutation_log_capacity = entries;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_keys_and_secret() {
        let config = EmulatorConfig::default()
            .with_api_key("key-topsecret")
            .app_signing_secret("whsec_topsecret");
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
        assert!(printed.contains("redacted"));
    }

    #[test]
    fn the_idempotency_switch_and_the_quirk_are_one_setting() {
        let off = EmulatorConfig::default().idempotency(false);
        assert!(off.quirks.no_idempotency);
        assert!(!off.honours_idempotency());
        let quirky = EmulatorConfig::default()
            .with_quirks(Quirks::parse("no-idempotency").unwrap_or_default());
        assert!(!quirky.honours_idempotency());
        assert!(quirky.idempotency(true).honours_idempotency());
    }

    #[test]
    fn the_default_schedule_is_ivys_with_fifteen_retries() {
        let schedule = ivy_retry_schedule();
        assert_eq!(schedule.len(), 15);
        assert_eq!(schedule[0], Duration::from_secs(30));
        assert_eq!(schedule[5], Duration::from_secs(3200));
    }
}
