//! ivy-webhook-operator: keeps Ivy webhook subscriptions in step with `WebhookSubscription`
//! resources and hands receivers their signing secret in a Kubernetes Secret.
//!
//! Dependencies point one way: the binaries use [`controller`] and [`emulator`], which use
//! [`ivy`]; [`crd`] depends on nothing of ours.

pub mod accounts;
pub mod controller;
pub mod crd;
pub mod emulator;
pub mod ivy;
pub mod operator;
