//! Ivy accounts as resources: which account a `WebhookSubscription` uses, one budgeted client
//! per account, and the controller that checks each account's key.
//!
//! - `identity`: [`AccountRef`], an account's key and metric label;
//! - `budget`: the token bucket shared by every resource of one account, and [`Budgeted`];
//! - `metrics`: calls, throttled waits and `429`s per account;
//!
//! Dependencies point one way: the controller and the operator use this module; it uses
//! [`crate::crd`] and [`crate::ivy`] and nothing above them.

pub mod budget;
pub mod identity;
pub mod metrics;

#[cfg(test)]
pub(crate) mod test_support;

pub use budget::{Budget, BudgetConfig, Budgeted};
pub use identity::AccountRef;
pub use metrics::{AccountCounters, AccountMetrics};
