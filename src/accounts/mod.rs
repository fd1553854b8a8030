//! Ivy accounts as resources: which account a `WebhookSubscription` uses, one budgeted client
//! per account, and the controller that checks each account's key.
//!
//! - `identity`: [`AccountRef`], an account's key and metric label;
//! - `source`: an account's spec read alike from both kinds, and who a cluster account admits;
//! - `credentials`: reading an account's Secrets;
//! - `budget`: the token bucket shared by every resource of one account, and [`Budgeted`];
//! - `metrics`: calls, throttled waits and `429`s per account;
//! - `registry`: [`AccountRegistry::client_for`], the one door from a resource to an account;
//! - `status`: an account's `Ready` condition, computed purely;
//! - `reconcile`: the controller that checks accounts and writes their status
//!   ([`run_accounts`]).
//!
//! Dependencies point one way: the controller and the operator use this module; it uses
//! [`crate::crd`] and [`crate::ivy`] and nothing above them.

pub mod budget;
pub mod credentials;
pub mod identity;
pub mod metrics;
pub mod reconcile;
pub mod registry;
pub mod source;
pub mod status;

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

pub use budget::{Budget, BudgetConfig, Budgeted};
pub use identity::AccountRef;
pub use metrics::{AccountCounters, AccountMetrics};
pub use reconcile::run_accounts;
pub use registry::{
    AccountError, AccountRegistry, AccountsConfig, Decorator, DefaultAccount, Resolved,
};
pub use status::AccountReason;
