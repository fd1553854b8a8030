//! ivy-webhook-operator: keeps Ivy webhook subscriptions in step with `WebhookSubscription`
//! resources and hands receivers their signing secret in a Kubernetes Secret.
//!
//! Dependencies point one way: the binaries use [`operator`] (the process around the
//! controller) and [`emulator`]; [`operator`] uses [`controller`]; [`controller`] uses [`ivy`]
//! and [`crd`]; [`emulator`] uses only [`ivy::Dialect`]; [`crd`] and [`ivy`] depend on nothing
//! of ours.

pub mod accounts;
pub mod controller;
pub mod crd;
pub mod emulator;
pub mod ivy;
pub mod operator;
