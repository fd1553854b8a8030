//! The HTTP plumbing every dialect shares, knowing no dialect: configuration (`config`), the
//! API-key file (`key_file`), sending (`transport`), what a status means (`classify`), reading
//! bodies (`decode`) and what is known of routes no document defines (`route`).

pub(crate) mod classify;
pub(crate) mod config;
pub(crate) mod decode;
pub(crate) mod key_file;
pub(crate) mod route;
pub(crate) mod transport;

#[cfg(test)]
pub(crate) mod test_support;

pub use config::{
    ClientConfig, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, HttpClientError, http_client,
};
pub(crate) use transport::Transport;
