//! Ivy's event catalogue as a closed enum, so `kubectl apply` refuses an unknown name.
//!
//! The list is the union of the seeds and Ivy's current SDK (see `docs/ivy-emulator.md`):
//! both naming styles (`refund_succeeded`, `refund.succeeded`) are real and kept verbatim.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

macro_rules! catalogue {
    ($($variant:ident => $wire:literal,)+) => {
        /// One event type of Ivy's catalogue.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum EventName {
            $(
                #[serde(rename = $wire)]
                #[doc = concat!("`", $wire, "`")]
                $variant,
            )+
        }

        impl EventName {
            /// Every event name Ivy knows.
            pub const ALL: &'static [EventName] = &[$(EventName::$variant,)+];

            /// The name exactly as Ivy spells it on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventName::$variant => $wire,)+
                }
            }
        }
    };
}

catalogue! {
    Test => "test",
    MerchantUpdated => "merchant_updated",
    MerchantAppUpdated => "merchant_app_updated",
    OrderCreated => "order_created",
    OrderUpdated => "order_updated",
    RefundSucceeded => "refund_succeeded",
    RefundFailed => "refund_failed",
    PayoutReportRequested => "payout_report_requested",
    DataSessionCompleted => "data_session_completed",
    CheckoutSessionCreated => "checkout_session_created",
    CheckoutSessionUpdated => "checkout_session_updated",
    CheckoutSessionExpired => "checkout_session_expired",
    CheckoutSessionCompleted => "checkout_session_completed",
    PayoutCreated => "payout_created",
    PayoutUpdated => "payout_updated",
    MandateSetupStarted => "mandate_setup_started",
    MandateSetupSucceeded => "mandate_setup_succeeded",
    MandateSetupFailed => "mandate_setup_failed",
    MandateRevoked => "mandate_revoked",
    UserPayoutFailed => "user_payout.failed",
    UserPayoutPaid => "user_payout.paid",
    UserPayoutInitiated => "user_payout.initiated",
    CheckoutSessionDotCompleted => "checkout_session.completed",
    CheckoutSessionDotExpired => "checkout_session.expired",
    PayoutDotPaid => "payout.paid",
    PayoutDotFailed => "payout.failed",
    RefundDotSucceeded => "refund.succeeded",
    RefundDotFailed => "refund.failed",
    RefundDotInitiated => "refund.initiated",
    PayoutDotInitiated => "payout.initiated",
    DepositDotReceived => "deposit.received",
    ReturnDotInitiated => "return.initiated",
    ReturnDotSucceeded => "return.succeeded",
    ReturnDotFailed => "return.failed",
    ReturnDotReturned => "return.returned",
    FxDotInitiated => "fx.initiated",
    FxDotSucceeded => "fx.succeeded",
    FxDotFailed => "fx.failed",
}

impl std::fmt::Display for EventName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_through_serde() {
        for event in EventName::ALL {
            let json = serde_json::to_string(event).unwrap();
            assert_eq!(json, format!("\"{}\"", event.as_str()));
            let back: EventName = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *event);
        }
    }

    #[test]
    fn catalogue_has_all_38_distinct_names() {
        let mut names: Vec<_> = EventName::ALL.iter().map(|e| e.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 38);
    }

    #[test]
    fn unknown_name_is_refused() {
        assert!(serde_json::from_str::<EventName>("\"order_deleted\"").is_err());
    }
}
