//! Realistic `payload` objects for each catalogue event. The Order (for `order_created` and
//! `order_updated`) follows the fields Ivy's webhook event reference describes; other events
//! get a smaller object of the same flavour. Field names are camelCase like the rest of Ivy's
//! public objects.

use serde_json::{Value, json};
use uuid::Uuid;

/// The `payload` for one event of type `event_type`, for merchant number `merchant`.
pub fn payload(event_type: &str, merchant: usize) -> Value {
    let merchant_id = format!("merchant_{}", merchant + 1);
    let app_id = format!("app_{}", merchant + 1);
    let family = event_type.split(['.', '_']).next().unwrap_or(event_type);
    match event_type {
        "test" => json!({
            "message": "This is a test webhook sent by the Ivy emulator.",
            "merchantId": merchant_id,
            "appId": app_id,
        }),
        "order_created" => order(&merchant_id, &app_id, "waiting_for_payment"),
        "order_updated" => order(&merchant_id, &app_id, "paid"),
        "merchant_updated" => json!({
            "id": merchant_id,
            "name": "Emulated Shop GmbH",
            "country": "DE",
            "updatedAt": now(),
        }),
        "merchant_app_updated" => json!({
            "id": app_id,
            "merchantId": merchant_id,
            "name": "Emulated Shop",
            "updatedAt": now(),
        }),
        _ => match family {
            "refund" => json!({
                "id": Uuid::new_v4().to_string(),
                "orderId": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "amount": 12.5,
                "currency": "EUR",
                "status": status_from(event_type, "pending"),
                "createdAt": now(),
            }),
            "checkout" => json!({
                "id": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "appId": app_id,
                "referenceId": "order-4711",
                "price": {"total": 42.5, "currency": "EUR"},
                "status": status_from(event_type, "open"),
                "expiresAt": now(),
            }),
            "payout" | "user" => json!({
                "id": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "amount": 1042.17,
                "currency": "EUR",
                "status": status_from(event_type, "initiated"),
                "createdAt": now(),
            }),
            "mandate" => json!({
                "id": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "referenceId": "mandate-ref-1",
                "status": status_from(event_type, "started"),
                "accountHolderName": "Erika Mustermann",
            }),
            "data" => json!({
                "id": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "status": "completed",
                "completedAt": now(),
            }),
            _ => json!({
                "id": Uuid::new_v4().to_string(),
                "merchantId": merchant_id,
                "event": event_type,
                "createdAt": now(),
            }),
        },
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// The last word of the event name (`payout.paid` -> `paid`), else `default`.
fn status_from(event_type: &str, default: &str) -> String {
    event_type
        .rsplit(['.', '_'])
        .next()
        .filter(|s| *s != "created" && *s != "updated")
        .unwrap_or(default)
        .to_owned()
}

/// An Order as Ivy's webhook event reference documents it.
fn order(merchant_id: &str, app_id: &str, status: &str) -> Value {
    let id = Uuid::new_v4().to_string();
    json!({
        "id": id,
        "merchantId": merchant_id,
        "appId": app_id,
        "merchantAppId": app_id,
        "shopName": "Emulated Shop",
        "referenceId": "order-4711",
        "displayId": "IVY-4711",
        "ivyFee": 0.35,
        "amount": 42.5,
        "price": {
            "totalNet": 35.71,
            "vat": 6.79,
            "shipping": 0.0,
            "total": 42.5,
            "currency": "EUR",
        },
        "status": status,
        "paymentStatus": if status == "paid" { "succeeded" } else { "processing" },
        "source": {
            "type": "iban",
            "iban": {"iban": "DE89370400440532013000", "accountHolderName": "Erika Mustermann"},
        },
        "destination": {
            "type": "iban",
            "iban": {"iban": "DE02120300000000202051", "accountHolderName": "Emulated Shop GmbH"},
        },
        "email": "erika@example.com",
        "shopper": {"email": "erika@example.com"},
        "billingAddress": {
            "line1": "Musterstrasse 1",
            "city": "Berlin",
            "zipCode": "10115",
            "country": "DE",
        },
        "shippingAddress": null,
        "metadata": {"cartId": "cart-99"},
        "lineItems": [{
            "name": "Organic cotton shirt",
            "singleNet": 35.71,
            "singleVat": 6.79,
            "amount": 42.5,
            "quantity": 1,
            "referenceId": "sku-1",
            "image": "https://shop.example/img/shirt.png",
            "EAN": "4006381333931",
        }],
        "shopLogo": "https://shop.example/logo.png",
        "incentiveMode": "white_label",
        "handshake": false,
        "shippingMethod": null,
        "refunds": [],
        "refundedAmount": 0.0,
        "paymentReference": "IVY 4711",
        "bankStatementReference": "IVY-4711 Emulated Shop",
        "statusHistory": [
            {"status": "processing", "timestamp": now()},
            {"status": status, "timestamp": now()},
        ],
        "paymentMethod": "sepa_debit",
        "mandate": {"setup": false},
        "subaccountId": null,
        "paymentMode": "settlement",
        "customer": {"id": "customer-1"},
        "createdAt": now(),
        "updatedAt": now(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::catalogue::EVENTS;

    #[test]
    fn every_catalogue_event_has_an_object_payload() {
        for event in EVENTS {
            assert!(payload(event, 0).is_object(), "{event}");
        }
    }

    #[test]
    fn order_events_carry_an_order() {
        let created = payload("order_created", 0);
        assert_eq!(created["status"], "waiting_for_payment");
        assert_eq!(created["price"]["currency"], "EUR");
        assert_eq!(payload("order_updated", 1)["merchantId"], "merchant_2");
    }

    #[test]
    fn status_comes_from_the_event_name() {
        assert_eq!(payload("payout.paid", 0)["status"], "paid");
        assert_eq!(payload("refund_failed", 0)["status"], "failed");
        assert_eq!(payload("payout_created", 0)["status"], "initiated");
    }
}
