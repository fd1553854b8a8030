//! The subscription store behind every dialect, indexed so that no request costs time in
//! proportion to the number of subscriptions: by UUID, by (merchant, URL), and per merchant in
//! creation order (a page by offset or by cursor is a slice, not a scan).
//!
//! Only lists with filters (`rest`'s `active` / `event`) and the admin API's full dumps walk
//! everything; the operator's own calls never filter.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use uuid::Uuid;

use super::model::{
    Change, Filter, Merchant, ModelError, NewSubscription, Subscription, check_description,
    check_events, check_url, new_secret,
};
use crate::ivy::Dialect;

/// One merchant's subscriptions: creation order and URL uniqueness.
#[derive(Debug, Default)]
struct MerchantIndex {
    /// `(seq, uuid)` sorted by `seq`. Sequence numbers only grow, so a create appends; a delete
    /// is a binary search and a shift of this small vector.
    order: Vec<(u64, Uuid)>,
    urls: HashMap<String, Uuid>,
}

impl MerchantIndex {
    fn position(&self, seq: u64) -> Result<usize, usize> {
        self.order.binary_search_by_key(&seq, |(s, _)| *s)
    }
}

/// All subscriptions of all merchants.
#[derive(Debug, Default)]
pub struct Store {
    subscriptions: HashMap<Uuid, Subscription>,
    /// Every subscription in creation order (for the admin API's listing).
    creation_order: BTreeMap<u64, Uuid>,
    merchants: HashMap<Merchant, MerchantIndex>,
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
        if self.find_by_url(merchant, &new.url).is_some() {
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
        let index = self.merchants.entry(merchant).or_default();
        index.order.push((subscription.seq, subscription.uuid));
        index
            .urls
            .insert(subscription.url.clone(), subscription.uuid);
        self.creation_order
            .insert(subscription.seq, subscription.uuid);
        self.subscriptions
            .insert(subscription.uuid, subscription.clone());
        Ok(subscription)
    }

    /// The merchant's subscription `uuid`; another merchant's is not found.
    pub fn get(&self, merchant: Merchant, uuid: Uuid) -> Result<&Subscription, ModelError> {
        self.subscriptions
            .get(&uuid)
            .filter(|s| s.merchant == merchant)
            .ok_or(ModelError::NotFound)
    }

    pub fn update(
        &mut self,
        merchant: Merchant,
        uuid: Uuid,
        change: Change,
        allow_http: bool,
    ) -> Result<Subscription, ModelError> {
        let old_url = self.get(merchant, uuid)?.url.clone();
        if let Some(url) = &change.url {
            check_url(url, allow_http)?;
            if self
                .find_by_url(merchant, url)
                .is_some_and(|holder| holder.uuid != uuid)
            {
                return Err(ModelError::DuplicateUrl);
            }
        }
        if let Some(events) = &change.events {
            check_events(events)?;
        }
        check_description(change.description.as_deref())?;
        let subscription = self
            .subscriptions
            .get_mut(&uuid)
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
        let updated = subscription.clone();
        if updated.url != old_url
            && let Some(index) = self.merchants.get_mut(&merchant)
        {
            index.urls.remove(&old_url);
            index.urls.insert(updated.url.clone(), uuid);
        }
        Ok(updated)
    }

    pub fn delete(&mut self, merchant: Merchant, uuid: Uuid) -> Result<Subscription, ModelError> {
        self.get(merchant, uuid)?;
        self.remove(uuid).ok_or(ModelError::NotFound)
    }

    /// Deletes whatever merchant owns it (admin).
    pub fn delete_any(&mut self, uuid: Uuid) -> Option<Subscription> {
        self.remove(uuid)
    }

    fn remove(&mut self, uuid: Uuid) -> Option<Subscription> {
        let subscription = self.subscriptions.remove(&uuid)?;
        self.creation_order.remove(&subscription.seq);
        if let Some(index) = self.merchants.get_mut(&subscription.merchant) {
            if let Ok(at) = index.position(subscription.seq) {
                index.order.remove(at);
            }
            index.urls.remove(&subscription.url);
        }
        Some(subscription)
    }

    /// Finds a subscription by UUID whatever its merchant (admin).
    pub fn find_any(&self, uuid: Uuid) -> Option<&Subscription> {
        self.subscriptions.get(&uuid)
    }

    /// The merchant's subscription with exactly this URL.
    pub fn find_by_url(&self, merchant: Merchant, url: &str) -> Option<&Subscription> {
        let uuid = self.merchants.get(&merchant)?.urls.get(url)?;
        self.subscriptions.get(uuid)
    }

    /// Every subscription of every merchant, in creation order (admin).
    pub fn all(&self) -> impl Iterator<Item = &Subscription> {
        self.creation_order
            .values()
            .filter_map(|uuid| self.subscriptions.get(uuid))
    }

    /// How many subscriptions all merchants hold.
    pub fn total(&self) -> usize {
        self.subscriptions.len()
    }

    /// How many subscriptions the merchant holds.
    pub fn count(&self, merchant: Merchant) -> usize {
        self.merchants.get(&merchant).map_or(0, |i| i.order.len())
    }

    /// Up to `limit` of the merchant's subscriptions in creation order, skipping `offset`.
    pub fn page_at(&self, merchant: Merchant, offset: usize, limit: usize) -> Vec<&Subscription> {
        let Some(index) = self.merchants.get(&merchant) else {
            return Vec::new();
        };
        let start = offset.min(index.order.len());
        self.resolve(index.order[start..].iter().take(limit))
    }

    /// Up to `limit` of the merchant's subscriptions created after the one numbered
    /// `after_seq` (0: from the first), and whether more follow.
    pub fn page_after(
        &self,
        merchant: Merchant,
        after_seq: u64,
        limit: usize,
    ) -> (Vec<&Subscription>, bool) {
        let Some(index) = self.merchants.get(&merchant) else {
            return (Vec::new(), false);
        };
        let start = index.order.partition_point(|(seq, _)| *seq <= after_seq);
        let end = start.saturating_add(limit).min(index.order.len());
        let page = self.resolve(index.order[start..end].iter());
        (page, end < index.order.len())
    }

    /// The merchant's subscriptions matching `filter`, in creation order. Walks all of the
    /// merchant's subscriptions: only for filtered and unpaged lists.
    pub fn list(&self, merchant: Merchant, filter: &Filter) -> Vec<&Subscription> {
        let Some(index) = self.merchants.get(&merchant) else {
            return Vec::new();
        };
        self.resolve(index.order.iter())
            .into_iter()
            .filter(|s| filter.matches(s))
            .collect()
    }

    fn resolve<'a>(
        &'a self,
        entries: impl Iterator<Item = &'a (u64, Uuid)>,
    ) -> Vec<&'a Subscription> {
        entries
            .filter_map(|(_, uuid)| self.subscriptions.get(uuid))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

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

    fn urls(page: &[&Subscription]) -> Vec<String> {
        page.iter().map(|s| s.url.clone()).collect()
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
        assert!(store.get(M, s.uuid).is_ok());
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
    fn a_changed_or_deleted_url_is_free_again() {
        let mut store = Store::default();
        let a = store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        let moved = Change {
            url: Some("https://moved.example/".into()),
            ..Default::default()
        };
        store.update(M, a.uuid, moved, false).unwrap();
        assert!(store.find_by_url(M, "https://a.example/").is_none());
        assert_eq!(
            store.find_by_url(M, "https://moved.example/").unwrap().uuid,
            a.uuid
        );
        store
            .create(M, Dialect::Rest, new("https://a.example/"), false)
            .unwrap();
        store.delete(M, a.uuid).unwrap();
        assert!(
            store
                .create(M, Dialect::Rest, new("https://moved.example/"), false)
                .is_ok()
        );
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

    #[test]
    fn pages_by_offset_and_by_cursor_follow_creation_order_per_merchant() {
        let mut store = Store::default();
        for n in 0..5 {
            store
                .create(
                    M,
                    Dialect::Rest,
                    new(&format!("https://m0.example/{n}")),
                    false,
                )
                .unwrap();
            store
                .create(
                    Merchant(1),
                    Dialect::Rest,
                    new(&format!("https://m1.example/{n}")),
                    false,
                )
                .unwrap();
        }
        assert_eq!(
            urls(&store.page_at(M, 1, 2)),
            ["https://m0.example/1", "https://m0.example/2"]
        );
        assert!(store.page_at(M, 5, 2).is_empty());
        assert!(store.page_at(Merchant(7), 0, 2).is_empty());
        let (first, more) = store.page_after(M, 0, 3);
        assert!(more);
        let (rest, more) = store.page_after(M, first[2].seq, 3);
        assert!(!more);
        assert_eq!(
            urls(&rest),
            ["https://m0.example/3", "https://m0.example/4"]
        );
        assert_eq!(store.count(M), 5);
        assert_eq!(store.total(), 10);
    }

    /// The naive model the indexed store must agree with: a vector in creation order.
    #[derive(Default)]
    struct Reference {
        items: Vec<(Merchant, Uuid, String, u64)>,
    }

    #[test]
    fn the_indexes_agree_with_a_plain_list_under_random_operations() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut store = Store::default();
        let mut reference = Reference::default();
        for step in 0..3000 {
            let merchant = Merchant(rng.random_range(0..3));
            let url = format!("https://r.example/{}", rng.random_range(0..200));
            match rng.random_range(0..10) {
                0..5 => {
                    let taken = reference
                        .items
                        .iter()
                        .any(|(m, _, u, _)| *m == merchant && *u == url);
                    let created = store.create(merchant, Dialect::Rest, new(&url), false);
                    assert_eq!(created.is_err(), taken, "step {step}");
                    if let Ok(s) = created {
                        reference.items.push((merchant, s.uuid, url, s.seq));
                    }
                }
                5..7 if !reference.items.is_empty() => {
                    let at = rng.random_range(0..reference.items.len());
                    let (owner, uuid, _, _) = reference.items[at].clone();
                    let taken = reference
                        .items
                        .iter()
                        .any(|(m, u, x, _)| *m == owner && *x == url && *u != uuid);
                    let change = Change {
                        url: Some(url.clone()),
                        ..Default::default()
                    };
                    let updated = store.update(owner, uuid, change, false);
                    assert_eq!(updated.is_err(), taken, "step {step}");
                    if updated.is_ok() {
                        reference.items[at].2 = url;
                    }
                }
                _ if !reference.items.is_empty() => {
                    let at = rng.random_range(0..reference.items.len());
                    let (owner, uuid, _, _) = reference.items.remove(at);
                    store.delete(owner, uuid).unwrap();
                }
                _ => {}
            }
            for m in 0..3 {
                let merchant = Merchant(m);
                let expected: Vec<(Uuid, String)> = reference
                    .items
                    .iter()
                    .filter(|(owner, ..)| *owner == merchant)
                    .map(|(_, uuid, url, _)| (*uuid, url.clone()))
                    .collect();
                let offset = rng.random_range(0..=expected.len());
                let limit = rng.random_range(1..=7);
                let paged: Vec<(Uuid, String)> = store
                    .page_at(merchant, offset, limit)
                    .iter()
                    .map(|s| (s.uuid, s.url.clone()))
                    .collect();
                let want: Vec<(Uuid, String)> =
                    expected.iter().skip(offset).take(limit).cloned().collect();
                assert_eq!(paged, want, "step {step}");
                assert_eq!(store.count(merchant), expected.len());
                for (uuid, url) in &expected {
                    assert_eq!(
                        store.find_by_url(merchant, url).map(|s| s.uuid),
                        Some(*uuid)
                    );
                    assert_eq!(store.get(merchant, *uuid).map(|s| &s.url), Ok(url));
                }
            }
        }
        // Walking by cursor visits every subscription once, in order.
        for m in 0..3 {
            let merchant = Merchant(m);
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let (page, more) = store.page_after(merchant, after, 4);
                seen.extend(page.iter().map(|s| s.uuid));
                match page.last() {
                    Some(last) if more => after = last.seq,
                    _ => break,
                }
            }
            let want: Vec<Uuid> = reference
                .items
                .iter()
                .filter(|(owner, ..)| *owner == merchant)
                .map(|(_, uuid, ..)| *uuid)
                .collect();
            assert_eq!(seen, want);
        }
        assert_eq!(store.all().count(), reference.items.len());
    }
}
