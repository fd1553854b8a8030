//! The emulator's own copy of Ivy's event catalogue: the union of every list in Ivy's documents
//! and its current SDK (see `docs/ivy-emulator.md`). Kept here, not imported from the operator,
//! so a typo on one side shows up as a disagreement in tests.

/// Every event name Ivy may deliver, in the documents' order (the webhook event reference, the
/// `internal` create page, then the SDK's).
pub const EVENTS: &[&str] = &[
    // the webhook event reference (the full list)
    "test",
    "merchant_updated",
    "merchant_app_updated",
    "order_created",
    "order_updated",
    "refund_succeeded",
    "refund_failed",
    "payout_report_requested",
    "data_session_completed",
    "checkout_session_created",
    "checkout_session_updated",
    "checkout_session_expired",
    "checkout_session_completed",
    "payout_created",
    "payout_updated",
    "mandate_setup_started",
    "mandate_setup_succeeded",
    "mandate_setup_failed",
    "mandate_revoked",
    "user_payout.failed",
    "user_payout.paid",
    "user_payout.initiated",
    // the `internal` create page (dotted style)
    "checkout_session.completed",
    "checkout_session.expired",
    "payout.paid",
    "payout.failed",
    "refund.succeeded",
    "refund.failed",
    // Ivy's current SDK
    "refund.initiated",
    "payout.initiated",
    "deposit.received",
    "return.initiated",
    "return.succeeded",
    "return.failed",
    "return.returned",
    "fx.initiated",
    "fx.succeeded",
    "fx.failed",
];

/// Whether `name` is in the catalogue (exact, case-sensitive match).
pub fn is_known(name: &str) -> bool {
    EVENTS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_every_documented_name_once() {
        assert_eq!(EVENTS.len(), 38);
        let mut sorted = EVENTS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), EVENTS.len());
    }

    #[test]
    fn names_match_exactly() {
        assert!(is_known("order_created"));
        assert!(is_known("user_payout.paid"));
        assert!(is_known("fx.failed"));
        assert!(!is_known("Order_Created"));
        assert!(!is_known("order.created"));
        assert!(!is_known(""));
    }
}
