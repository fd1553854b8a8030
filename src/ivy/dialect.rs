//! The three shapes of Ivy's webhook-subscription API.

use std::fmt;
use std::str::FromStr;

/// Which wire format to speak; each is described in `docs/ivy-emulator.md` ("Wire formats").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Dialect {
    /// REST resources under `/webhook`, the signing secret in the create answer.
    Rest,
    /// `POST /api/service/internal/webhook-subscription/*`; Ivy documents only create and update.
    Internal,
    /// `POST /api/service/webhook-subscription/*`, the API Ivy's current SDKs call; the signing
    /// secret belongs to the merchant app.
    Service,
}

impl Dialect {
    pub const ALL: [Dialect; 3] = [Dialect::Rest, Dialect::Internal, Dialect::Service];

    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Rest => "rest",
            Dialect::Internal => "internal",
            Dialect::Service => "service",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of `rest`, `internal`, `service`.
#[derive(Debug, thiserror::Error)]
#[error("unknown Ivy dialect {0:?} (expected rest, internal or service)")]
pub struct UnknownDialect(String);

impl FromStr for Dialect {
    type Err = UnknownDialect;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rest" => Ok(Dialect::Rest),
            "internal" => Ok(Dialect::Internal),
            "service" => Ok(Dialect::Service),
            other => Err(UnknownDialect(other.to_owned())),
        }
    }
}
