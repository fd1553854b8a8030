//! Sending events to subscribers: the signed `{id, type, payload, date}` body, the retries on
//! the configured schedule (each attempt recorded in the delivery log), and the loopback-only
//! safety rule.
//!
//! SAFETY: this emulator runs on machines that may send traffic only to loopback. It delivers
//! only to URLs whose host is a literal loopback IP (127.0.0.0/8, ::1) or `localhost` (sent to
//! 127.0.0.1, so nothing is ever resolved); any other destination is recorded as skipped and
//! never contacted. The delivery client ignores proxy settings and follows no redirects.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::Serialize;
use sha2::Sha256;
use url::{Host, Url};
use uuid::Uuid;

use super::delivery_log::{Attempt, Delivery, DeliveryState};
use super::model::{Merchant, Subscription};
use super::shared::Shared;

/// The body Ivy sends, in its documented field order.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    payload: &'a serde_json::Value,
    date: String,
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`. Written here rather than taken
/// from the client's `signature` module so that tests verifying deliveries with the client's
/// `verify_signature` check two independent implementations against each other.
pub fn signature(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; an unsigned delivery would simply fail verification.
        Err(_) => String::new(),
    }
}

/// Why a delivery was not sent.
pub const SKIPPED_NON_LOOPBACK: &str = "skipped: non-loopback destination";

/// The URL to actually contact for a subscription URL, or why it must not be contacted.
/// `localhost` becomes `127.0.0.1`; with `plain_http_to_loopback` an https URL is contacted
/// over plain http on the same host and port.
pub fn loopback_target(url: &str, plain_http_to_loopback: bool) -> Result<Url, &'static str> {
    let mut target = Url::parse(url).map_err(|_| "skipped: invalid URL")?;
    let loopback = match target.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) if name.eq_ignore_ascii_case("localhost") => {
            target
                .set_ip_host(IpAddr::V4(Ipv4Addr::LOCALHOST))
                .map_err(|()| "skipped: invalid URL")?;
            true
        }
        _ => false,
    };
    if !loopback {
        return Err(SKIPPED_NON_LOOPBACK);
    }
    match target.scheme() {
        "http" => {}
        "https" if plain_http_to_loopback => {
            let port = target.port_or_known_default();
            target
                .set_scheme("http")
                .map_err(|()| "skipped: invalid URL")?;
            target.set_port(port).map_err(|()| "skipped: invalid URL")?;
        }
        "https" => {}
        _ => return Err("skipped: unsupported scheme"),
    }
    Ok(target)
}

/// The secret a subscription's deliveries are signed with.
pub(crate) fn secret_for(shared: &Shared, subscription: &Subscription) -> String {
    subscription
        .signing_secret
        .clone()
        .unwrap_or_else(|| shared.app_secret.clone())
}

/// Sends `event_type` with `payload` to `subscription` (in the background) and returns the
/// delivery as first recorded.
pub(crate) fn send_event(
    shared: &Arc<Shared>,
    subscription: &Subscription,
    event_type: &str,
    payload: &serde_json::Value,
) -> Delivery {
    let webhook_id = Uuid::new_v4().to_string();
    let envelope = Envelope {
        id: &webhook_id,
        event_type,
        payload,
        date: Timestamp::now().to_string(),
    };
    // Serialising plain JSON values and strings cannot fail.
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    start(shared, subscription, webhook_id, event_type, body, None)
}

/// Sends the body of an earlier delivery again (same webhook id), signed with the
/// subscription's current secret. `None` if the merchant has no such webhook or its
/// subscription is gone.
pub(crate) fn resend(
    shared: &Arc<Shared>,
    merchant: Merchant,
    webhook_id: &str,
) -> Option<Delivery> {
    let (original, subscription) = {
        let inner = shared.lock();
        let original = inner
            .deliveries
            .latest_of_webhook(merchant.0, webhook_id)?
            .clone();
        let uuid = Uuid::parse_str(&original.subscription_id).ok()?;
        let subscription = inner.store.get(merchant, uuid).ok()?.clone();
        (original, subscription)
    };
    Some(start(
        shared,
        &subscription,
        original.webhook_id,
        &original.event_type,
        original.body,
        Some(original.delivery_id),
    ))
}

fn start(
    shared: &Arc<Shared>,
    subscription: &Subscription,
    webhook_id: String,
    event_type: &str,
    body: String,
    resend_of: Option<String>,
) -> Delivery {
    let signature = signature(&secret_for(shared, subscription), body.as_bytes());
    let mut delivery = Delivery {
        delivery_id: Uuid::new_v4().to_string(),
        webhook_id,
        subscription_id: subscription.rest_id(),
        merchant: subscription.merchant.0,
        event_type: event_type.to_owned(),
        url: subscription.url.clone(),
        body,
        signature,
        state: DeliveryState::Pending,
        attempts: Vec::new(),
        resend_of,
    };
    match loopback_target(&subscription.url, shared.config.plain_http_to_loopback) {
        Err(reason) => {
            delivery.state = DeliveryState::Skipped;
            delivery.attempts.push(Attempt {
                at: Timestamp::now(),
                status: None,
                error: Some(reason.to_owned()),
            });
            tracing::info!(delivery_id = %delivery.delivery_id, event_type, reason, "delivery skipped");
            shared.lock().deliveries.push(delivery.clone());
        }
        Ok(target) => {
            shared.lock().deliveries.push(delivery.clone());
            let worker = run(
                shared.clone(),
                delivery.delivery_id.clone(),
                target,
                delivery.body.clone(),
                delivery.signature.clone(),
            );
            shared.spawn(worker);
        }
    }
    delivery
}

/// Tries a delivery now and after each delay of the retry schedule, until a 200.
async fn run(
    shared: Arc<Shared>,
    delivery_id: String,
    target: Url,
    body: String,
    signature: String,
) {
    let schedule = shared.config.retry_schedule.clone();
    for attempt in 0..=schedule.len() {
        if let Some(delay) = attempt.checked_sub(1).and_then(|i| schedule.get(i)) {
            tokio::time::sleep(*delay).await;
        }
        let result = shared
            .delivery_http
            .post(target.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Ivy-Signature", &signature)
            .body(body.clone())
            .send()
            .await;
        let (status, error) = match result {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(err) => (None, Some(describe(&err))),
        };
        let delivered = status == Some(200);
        let last = attempt == schedule.len();
        tracing::info!(%delivery_id, attempt, status, delivered, "delivery attempt");
        let mut inner = shared.lock();
        let Some(record) = inner.deliveries.get_mut(&delivery_id) else {
            return; // reset meanwhile
        };
        record.attempts.push(Attempt {
            at: Timestamp::now(),
            status,
            error,
        });
        if delivered {
            record.state = DeliveryState::Delivered;
            return;
        }
        if last {
            record.state = DeliveryState::Failed;
        }
    }
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".into()
    } else if err.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_literal_loopback_hosts_are_contacted() {
        for url in [
            "https://example.com/h",
            "https://10.0.0.1/h",
            "https://[::ffff:127.0.0.1]/h",
            "https://localhost.example.com/h",
            "https://127.0.0.1.nip.io/h",
        ] {
            assert_eq!(
                loopback_target(url, true),
                Err(SKIPPED_NON_LOOPBACK),
                "{url}"
            );
        }
        assert!(loopback_target("https://127.0.0.1:9/h", false).is_ok());
        assert!(loopback_target("https://127.8.9.10:9/h", false).is_ok());
        assert!(loopback_target("https://[::1]:9/h", false).is_ok());
    }

    #[test]
    fn localhost_is_sent_to_127_0_0_1_without_resolving() {
        let target = loopback_target("https://LOCALHOST:8443/h?x=1", false).unwrap();
        assert_eq!(target.as_str(), "https://127.0.0.1:8443/h?x=1");
    }

    #[test]
    fn plain_http_to_loopback_keeps_host_and_port() {
        let target = loopback_target("https://127.0.0.1:8443/hook", true).unwrap();
        assert_eq!(target.as_str(), "http://127.0.0.1:8443/hook");
        let default_port = loopback_target("https://127.0.0.1/hook", true).unwrap();
        assert_eq!(default_port.as_str(), "http://127.0.0.1:443/hook");
        let kept = loopback_target("https://127.0.0.1:8443/hook", false).unwrap();
        assert_eq!(kept.scheme(), "https");
    }

    #[test]
    fn the_signature_is_lowercase_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
