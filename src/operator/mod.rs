//! The operator process around the controller: flags, logging, the metrics and health server,
//! leader election and shutdown. Only the binary uses this module.

pub mod cli;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod server;
pub mod start;

pub use cli::{Cli, Command, RunArgs};
pub use start::run;
