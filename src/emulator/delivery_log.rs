//! The record of every delivery and its attempts, indexed by delivery id (the worker updates
//! its record after each attempt) and by webhook id (the `service` re-send finds the webhook).
//! Sending lives in `deliveries`; this module only keeps the records.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::Serialize;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Attempts are still being made (or scheduled).
    Pending,
    /// A 200 was received.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
    /// Never sent (e.g. non-loopback destination).
    Skipped,
}

/// One try at sending a delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attempt {
    pub at: Timestamp,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why there was no answer, or why the delivery was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One webhook sent (or to be sent) to one subscription.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    /// This record's id.
    pub delivery_id: String,
    /// The `id` in the body: the webhook id `POST /api/service/webhook/trigger` re-sends.
    pub webhook_id: String,
    /// The subscription's UUID (its `rest` id).
    pub subscription_id: String,
    pub merchant: usize,
    pub event_type: String,
    pub url: String,
    /// The exact body sent.
    pub body: String,
    /// The `X-Ivy-Signature` header sent.
    pub signature: String,
    pub state: DeliveryState,
    pub attempts: Vec<Attempt>,
    /// The delivery this one re-sends, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resend_of: Option<String>,
}

/// Every delivery, oldest first.
#[derive(Debug, Default)]
pub struct DeliveryLog {
    deliveries: Vec<Delivery>,
    by_delivery_id: HashMap<String, usize>,
    /// (merchant, webhook id) -> the latest delivery of that webhook.
    latest_by_webhook: HashMap<(usize, String), usize>,
}

impl DeliveryLog {
    pub fn push(&mut self, delivery: Delivery) {
        let at = self.deliveries.len();
        self.by_delivery_id.insert(delivery.delivery_id.clone(), at);
        self.latest_by_webhook
            .insert((delivery.merchant, delivery.webhook_id.clone()), at);
        self.deliveries.push(delivery);
    }

    pub fn get_mut(&mut self, delivery_id: &str) -> Option<&mut Delivery> {
        let at = *self.by_delivery_id.get(delivery_id)?;
        self.deliveries.get_mut(at)
    }

    /// The merchant's latest delivery of the webhook `webhook_id`.
    pub fn latest_of_webhook(&self, merchant: usize, webhook_id: &str) -> Option<&Delivery> {
        let at = *self
            .latest_by_webhook
            .get(&(merchant, webhook_id.to_owned()))?;
        self.deliveries.get(at)
    }

    pub fn all(&self) -> &[Delivery] {
        &self.deliveries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, webhook: &str, merchant: usize) -> Delivery {
        Delivery {
            delivery_id: id.into(),
            webhook_id: webhook.into(),
            subscription_id: "s".into(),
            merchant,
            event_type: "test".into(),
            url: "https://127.0.0.1/h".into(),
            body: "{}".into(),
            signature: String::new(),
            state: DeliveryState::Pending,
            attempts: Vec::new(),
            resend_of: None,
        }
    }

    #[test]
    fn records_are_found_by_delivery_id_and_the_latest_by_webhook_per_merchant() {
        let mut log = DeliveryLog::default();
        log.push(delivery("d1", "w1", 0));
        log.push(delivery("d2", "w1", 0));
        log.push(delivery("d3", "w1", 1));
        log.get_mut("d1").unwrap().state = DeliveryState::Delivered;
        assert_eq!(log.all()[0].state, DeliveryState::Delivered);
        assert_eq!(log.latest_of_webhook(0, "w1").unwrap().delivery_id, "d2");
        assert_eq!(log.latest_of_webhook(1, "w1").unwrap().delivery_id, "d3");
        assert!(log.latest_of_webhook(2, "w1").is_none());
        assert!(log.get_mut("nope").is_none());
    }
}
