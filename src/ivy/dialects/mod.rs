//! One client per wire dialect of Ivy's webhook-subscription API, each implementing
//! [`IvyApi`](super::api::IvyApi) over the shared HTTP plumbing, and the verb logic they share.

pub(crate) mod internal;
pub(crate) mod rest;
pub(crate) mod service;
pub(crate) mod verbs;
