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
        self.uuid.hyphenated().to_string()
    }

    pub fn internal_id(&self) -> String {
        format!("wsub_{}", self.uuid.simple())
    }

    pub fn service_id(&self) -> String {
        self.uuid.simple().to_string()
    }

    pub fn id_in(&self, dialect: Dialect) -> String {
        match dialect {
            Dialect::Rest => self.rest_id(),
            Dialect::Internal => self.internal_id(),
            Dialect::Service => self.service_id(),
        }
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

fn check_description(description: Option<&str>) -> Result<(), ModelError> {
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

/// All subscriptions, in creation order.
#[derive(Debug, Default)]
pub struct Store {
    subscriptions: Vec<Subscription>,
    next_seq: u64,
}

impl Store {
    pub fn create(
        &mut self,
        merchant: Merchant,
        via: Dialect,
        new: NewSubscription,
        allow_http: bool,
    ) -> Result<Subscription, ModelError> {
        check_url(&new.url, allow_http)?;
        check_events(&new.events)?;
        check_description(new.description.as_deref())?;
        if self.url_taken(merchant, &new.url, None) {
            return Err(ModelError::DuplicateUrl);
        }
        let now = Timestamp::now();
        self.next_seq += 1;
        let subscription = Subscription {
            uuid: Uuid::new_v4(),
            merchant,
            created_via: via,
            url: new.url,
            events: new.events,
            description: new.description,
            active: new.active,
            signing_secret: (via != Dialect::Service).then(new_secret),
            created_at: now,
            updated_at: now,
            seq: self.next_seq,
        };
        self.subscriptions.push(subscription.clone());
        Ok(subscription)
    }

    pub fn get(&self, merchant: Merchant, uuid: Uuid) -> Result<&Subscription, ModelError> {
        self.subscriptions
            .iter()
            .find(|s| s.uuid == uuid && s.merchant == merchant)
            .ok_or(ModelError::NotFound)
    }

    pub fn update(
        &mut self,
        merchant: Merchant,
        uuid: Uuid,
        change: Change,
        allow_http: bool,
    ) -> Result<Subscription, ModelError> {
        self.get(merchant, uuid)?;
        if let Some(url) = &change.url {
            check_url(url, allow_http)?;
            if self.url_taken(merchant, url, Some(uuid)) {
                return Err(ModelError::DuplicateUrl);
            }
        }
        if let Some(events) = &change.events {
            check_events(events)?;
        }
        check_description(change.description.as_deref())?;
        let subscription = self
            .subscriptions
            .iter_mut()
            .find(|s| s.uuid == uuid)
            .ok_or(ModelError::NotFound)?;
        if let Some(url) = change.url {
            subscription.url = url;
        }
        if let Some(events) = change.events {
            subscription.events = events;
        }
        if let Some(description) = change.description {
            subscription.description = Some(description);
        }
        if let Some(active) = change.active {
            subscription.active = active;
        }
        subscription.updated_at = Timestamp::now();
        Ok(subscription.clone())
    }

    pub fn delete(&mut self, merchant: Merchant, uuid: Uuid) -> Result<Subscription, ModelError> {
        let index = self
            .subscriptions
            .iter()
            .position(|s| s.uuid == uuid && s.merchant == merchant)
            .ok_or(ModelError::NotFound)?;
        Ok(self.subscriptions.remove(index))
    }

    /// Deletes whatever merchant owns it (admin).
    pub fn delete_any(&mut self, uuid: Uuid) -> Option<Subscription> {
        let index = self.subscriptions.iter().position(|s| s.uuid == uuid)?;
        Some(self.subscriptions.remove(index))
    }

    /// The merchant's subscriptions matching `filter`, in creation order.
    pub fn list(&self, merchant: Merchant, filter: &Filter) -> Vec<Subscription> {
        self.subscriptions
            .iter()
            .filter(|s| s.merchant == merchant)
            .filter(|s| filter.active.is_none_or(|a| s.active == a))
            .filter(|s| {
                filter
                    .event
                    .as_ref()
                    .is_none_or(|e| s.events.iter().any(|x| x == e))
            })
            .cloned()
            .collect()
    }

    /// Every subscription of every merchant (admin).
    pub fn all(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// Finds a subscription by UUID whatever its merchant (admin).
    pub fn find_any(&self, uuid: Uuid) -> Option<&Subscription> {
        self.subscriptions.iter().find(|s| s.uuid == uuid)
    }

    fn url_taken(&self, merchant: Merchant, url: &str, except: Option<Uuid>) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.merchant == merchant && s.url == url && Some(s.uuid) != except)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Merchant = Merchant(0);

    fn new(url: &str) -> NewSubscription {
        NewSubscription {
            url: url.into(),
            events: vec!["order_created".into()],
            description: None,
            active: true,
        }
    }

    #[test]
    fn ids_round_trip_in_every_dialect_and_only_in_their_own_format() {
        let mut store = Store::default();
        let s = store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        for dialect in Dialect::ALL {
            assert_eq!(parse_id(dialect, &s.id_in(dialect)), Some(s.uuid));
        }
        assert_eq!(parse_id(Dialect::Rest, &s.internal_id()), None);
        assert_eq!(parse_id(Dialect::Internal, &s.service_id()), None);
        assert_eq!(parse_id(Dialect::Service, &s.rest_id()), None);
        assert!(s.internal_id().starts_with("wsub_"));
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

    #[test]
    fn a_url_is_unique_per_merchant_only() {
        let mut store = Store::default();
        store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        assert_eq!(
            store
                .create(M, Dialect::Service, new("https://a.example/"), false)
                .unwrap_err(),
            ModelError::DuplicateUrl
        );
        assert!(
            store
                .create(Merchant(1), Dialect::Rest, new("https://a.example/"), false)
                .is_ok()
        );
    }

    #[test]
    fn another_merchants_subscription_is_not_found() {
        let mut store = Store::default();
        let s = store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        assert_eq!(
            store.get(Merchant(1), s.uuid).unwrap_err(),
            ModelError::NotFound
        );
        assert_eq!(
            store.delete(Merchant(1), s.uuid).unwrap_err(),
            ModelError::NotFound
        );
    }

    #[test]
    fn update_changes_only_given_fields_and_keeps_url_unique() {
        let mut store = Store::default();
        let a = store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        store
            .create(M, Dialect::Rest, new("https://b.example/"), false)
            .unwrap();
        let change = Change {
            active: Some(false),
            ..Default::default()
        };
        let updated = store.update(M, a.uuid, change, false).unwrap();
        assert!(!updated.active);
        assert_eq!(updated.url, "https://a.example/");
        let clash = Change {
            url: Some("https://b.example/".into()),
            ..Default::default()
        };
        assert_eq!(
            store.update(M, a.uuid, clash, false).unwrap_err(),
            ModelError::DuplicateUrl
        );
        let same = Change {
            url: Some("https://a.example/".into()),
            ..Default::default()
        };
        assert!(store.update(M, a.uuid, same, false).is_ok());
    }

    #[test]
    fn service_created_subscriptions_have_no_own_secret() {
        let mut store = Store::default();
        let r = store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        let s = store
            .create(M, Dialect::Service, new("https://b.example/"), false)
            .unwrap();
        assert!(r.signing_secret.unwrap().starts_with("whsec_"));
        assert!(s.signing_secret.is_none());
    }

    #[test]
    fn list_filters_by_active_and_event() {
        let mut store = Store::default();
        store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        let mut inactive = new("https://b.example/");
        inactive.active = false;
        inactive.events = vec!["test".into()];
        store.create(M, Dialect::Rest, inactive, false).unwrap();
        let active = Filter {
            active: Some(true),
            ..Default::default()
        };
        let test_event = Filter {
            event: Some("test".into()),
            ..Default::default()
        };
        assert_eq!(store.list(M, &active).len(), 1);
        assert_eq!(store.list(M, &test_event)[0].url, "https://b.example/");
        assert_eq!(store.list(M, &Filter::default()).len(), 2);
    }
}
