//! Reconcile paths against kube's mock client.
