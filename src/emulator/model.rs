//! The one in-memory model behind all three dialects: subscriptions per merchant, their ids in
//! each dialect's format, and the rules every dialect enforces (https URLs, known events,
//! unique URL per merchant). Dialect modules translate wire shapes to and from these types.
//!
//! One subscription has one UUID; each dialect shows it in its own format:
//! `rest` the hyphenated UUID, `internal` `wsub_` + the 32 hex digits, `service` the 32 hex
//! digits alone. A subscription created through any dialect is visible through all of them.

use std::net::IpAddr;

use jiff::Timestamp;
use rand::Rng;
use rand::distr::Alphanumeric;
use url::{Host, Url};
use uuid::Uuid;

use super::catalogue;
use crate::ivy::Dialect;

/// Longest URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// One merchant: the index of its API key in the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Merchant(pub usize);

impl Merchant {
    /// The merchant's id as Ivy's objects show it (`merchant_1` for the first key).
    pub fn name(self) -> String {
        format!("merchant_{}", self.0 + 1)
    }

    /// The id of the merchant's app (`app_1` for the first key).
    pub fn app_name(self) -> String {
        format!("app_{}", self.0 + 1)
    }
}

/// A stored subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    pub uuid: Uuid,
    pub merchant: Merchant,
    pub created_via: Dialect,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
    /// The subscription's own secret; `None` for subscriptions created through `service`,
    /// which are signed with the merchant app's secret.
    pub signing_secret: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Creation order, for stable pagination.
    pub seq: u64,
}

impl Subscription {
    pub fn rest_id(&self) -> String {
        format_id(Dialect::Rest, self.uuid)
    }

    pub fn internal_id(&self) -> String {
        format_id(Dialect::Internal, self.uuid)
    }

    pub fn service_id(&self) -> String {
        format_id(Dialect::Service, self.uuid)
    }

    pub fn id_in(&self, dialect: Dialect) -> String {
        format_id(dialect, self.uuid)
    }
}

/// A subscription's UUID in `dialect`'s id format.
pub fn format_id(dialect: Dialect, uuid: Uuid) -> String {
    match dialect {
        Dialect::Rest => uuid.hyphenated().to_string(),
        Dialect::Internal => format!("wsub_{}", uuid.simple()),
        Dialect::Service => uuid.simple().to_string(),
    }
}

/// Reads an id in `dialect`'s format; `None` if it is not one.
pub fn parse_id(dialect: Dialect, id: &str) -> Option<Uuid> {
    match dialect {
        Dialect::Rest => {
            let uuid = Uuid::parse_str(id).ok()?;
            (uuid.hyphenated().to_string() == id.to_ascii_lowercase()).then_some(uuid)
        }
        Dialect::Internal => parse_simple(id.strip_prefix("wsub_")?),
        Dialect::Service => parse_simple(id),
    }
}

/// Reads an id in any dialect's format (for the admin API).
pub fn parse_any_id(id: &str) -> Option<Uuid> {
    Dialect::ALL.iter().find_map(|d| parse_id(*d, id))
}

fn parse_simple(hex32: &str) -> Option<Uuid> {
    if hex32.len() != 32 || !hex32.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::parse_str(hex32).ok()
}

/// A fresh `whsec_` secret.
pub fn new_secret() -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    format!("whsec_{random}")
}

/// Which field a validation error is about; dialects pick their own code and wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Url,
    Events,
    Description,
}

/// Why the model refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelError {
    Invalid { field: Field, message: String },
    NotFound,
    DuplicateUrl,
}

/// The URL rules: absolute, at most [`MAX_URL_LEN`], https; plain http only when
/// `allow_http` and only to a loopback host.
pub fn check_url(url: &str, allow_http: bool) -> Result<(), ModelError> {
    let invalid = |message: &str| ModelError::Invalid {
        field: Field::Url,
        message: message.to_owned(),
    };
    if url.len() > MAX_URL_LEN {
        return Err(invalid("The URL is longer than 2048 characters."));
    }
    let parsed = Url::parse(url)
        .map_err(|_| invalid("The provided endpoint URL is invalid. Must be a valid HTTPS URL."))?;
    if parsed.host().is_none() {
        return Err(invalid("The provided endpoint URL has no host."));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http && is_loopback_host(&parsed) => Ok(()),
        "http" if allow_http => Err(invalid(
            "Plain http URLs are accepted only for loopback hosts.",
        )),
        _ => Err(invalid(
            "The provided endpoint URL is invalid. Must be a valid HTTPS URL.",
        )),
    }
}

/// The host is a literal loopback IP or `localhost`. Nothing is resolved.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The event rules: at least one, each in the catalogue.
pub fn check_events(events: &[String]) -> Result<(), ModelError> {
    if events.is_empty() {
        return Err(ModelError::Invalid {
            field: Field::Events,
            message: "At least one event type is required.".into(),
        });
    }
    let unknown: Vec<&str> = events
        .iter()
        .map(String::as_str)
        .filter(|e| !catalogue::is_known(e))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ModelError::Invalid {
            field: Field::Events,
            message: format!(
                "One or more event types are not supported: {}",
                unknown.join(", ")
            ),
        })
    }
}

pub fn check_description(description: Option<&str>) -> Result<(), ModelError> {
    match description {
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(ModelError::Invalid {
            field: Field::Description,
            message: "The description is longer than 1000 characters.".into(),
        }),
        _ => Ok(()),
    }
}

/// A create, after the dialect has read its wire body.
#[derive(Clone, Debug)]
pub struct NewSubscription {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub active: bool,
}

/// An update: `Some` fields change.
#[derive(Clone, Debug, Default)]
pub struct Change {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub active: Option<bool>,
}

/// List filters (`rest` only exposes them).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub active: Option<bool>,
    pub event: Option<String>,
}

impl Filter {
    /// No filter at all: every subscription matches.
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.event.is_none()
    }

    pub fn matches(&self, subscription: &Subscription) -> bool {
        self.active.is_none_or(|a| subscription.active == a)
            && self
                .event
                .as_ref()
                .is_none_or(|e| subscription.events.iter().any(|x| x == e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_in_every_dialect_and_only_in_their_own_format() {
        let uuid = Uuid::new_v4();
        for dialect in Dialect::ALL {
            assert_eq!(parse_id(dialect, &format_id(dialect, uuid)), Some(uuid));
            assert_eq!(parse_any_id(&format_id(dialect, uuid)), Some(uuid));
        }
        let internal = format_id(Dialect::Internal, uuid);
        assert_eq!(parse_id(Dialect::Rest, &internal), None);
        assert_eq!(
            parse_id(Dialect::Internal, &format_id(Dialect::Service, uuid)),
            None
        );
        assert_eq!(
            parse_id(Dialect::Service, &format_id(Dialect::Rest, uuid)),
            None
        );
        assert!(internal.starts_with("wsub_"));
    }

    #[test]
    fn urls_must_be_https_unless_http_is_allowed_for_loopback() {
        assert!(check_url("https://shop.example/h", false).is_ok());
        assert!(check_url("http://shop.example/h", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/h", false).is_err());
        assert!(check_url("http://127.0.0.1:8080/h", true).is_ok());
        assert!(check_url("http://[::1]:8080/h", true).is_ok());
        assert!(check_url("http://localhost/h", true).is_ok());
        assert!(check_url("http://shop.example/h", true).is_err());
        assert!(check_url("ftp://shop.example/h", true).is_err());
        assert!(check_url("not a url", false).is_err());
    }

    #[test]
    fn unknown_or_no_events_are_refused() {
        assert!(check_events(&["order_created".into(), "payout.paid".into()]).is_ok());
        assert!(check_events(&[]).is_err());
        let err = check_events(&["order_created".into(), "nope".into()]).unwrap_err();
        assert!(
            matches!(err, ModelError::Invalid { field: Field::Events, message } if message.contains("nope"))
        );
    }
}
