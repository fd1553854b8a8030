//! Verb logic more than one dialect shares, above the transport: walking a paged list, finding
//! one subscription by scanning the list, switching off a subscription that a create without
//! an active flag left on, and reading answers from routes no Ivy document defines.

use std::collections::HashSet;

use crate::ivy::api::IvyApi;
use crate::ivy::error::IvyError;
use crate::ivy::http::route::RouteState;
use crate::ivy::http::transport::RawResponse;
use crate::ivy::types::{
    IdempotencyKey, RemoteSubscription, SubscriptionPatch, SubscriptionRequest,
};

/// The page size every list asks for (the largest the dialects serve).
pub(crate) const PAGE_SIZE: usize = 100;
/// Stops a server that never ends its list from keeping us busy forever (100k subscriptions).
const MAX_PAGES: usize = 1000;

/// One page of a list as a dialect read it.
pub(crate) struct ListPage<C> {
    pub items: Vec<RemoteSubscription>,
    /// Where the next page starts; `None` after the last page.
    pub next: Option<C>,
}

/// Every subscription of a paged list, each once, in the order first seen.
///
/// `fetch(offset, cursor)` reads the page after the `offset` items received so far; `cursor`
/// is `None` for the first page and then the previous page's `next` (offset-paged dialects use
/// `()`). The walk ends when a page has no `next`, or when a page brings no subscription not
/// seen before: the list is over (an empty page), or the server ignores the offset or cursor and
/// would answer the same page for ever. A page's size says nothing: servers may send fewer
/// items than asked on any page.
pub(crate) async fn collect_pages<C, F, Fut>(
    mut fetch: F,
) -> Result<Vec<RemoteSubscription>, IvyError>
where
    F: FnMut(usize, Option<C>) -> Fut,
    Fut: Future<Output = Result<ListPage<C>, IvyError>>,
{
    let mut all = Vec::new();
    let mut ids = HashSet::new();
    let mut received = 0;
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = fetch(received, cursor).await?;
        received += page.items.len();
        let before = all.len();
        // Offsets shift when subscriptions come and go during the walk: keep the first copy.
        for item in page.items {
            if ids.insert(item.id.clone()) {
                all.push(item);
            }
        }
        match page.next {
            Some(next) if all.len() > before => cursor = Some(next),
            _ => return Ok(all),
        }
    }
    Err(IvyError::MalformedResponse {
        operation: "list",
        message: format!("the list did not end after {MAX_PAGES} pages"),
    })
}

/// The subscription `id`, found by walking `api`'s list (for dialects without a usable `get`).
pub(crate) async fn scan_list<A: IvyApi + ?Sized>(
    api: &A,
    id: &str,
) -> Result<RemoteSubscription, IvyError> {
    api.list()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| IvyError::NotFound { id: id.to_owned() })
}

/// For dialects whose create takes no active flag: when `request` asked for an inactive
/// subscription and the create left it active, switches it off with an update whose key
/// derives from the create's (so a replayed create replays this too).
///
/// Never fails: the create's one-time secret is in hand and must reach the caller. On failure
/// the subscription is returned still active, which the caller sees in `active` and corrects
/// on its next pass.
pub(crate) async fn deactivate_if_asked<A: IvyApi + ?Sized>(
    api: &A,
    request: &SubscriptionRequest,
    key: &IdempotencyKey,
    subscription: RemoteSubscription,
) -> RemoteSubscription {
    if request.active || subscription.active == Some(false) {
        return subscription;
    }
    let off = SubscriptionPatch {
        active: Some(false),
        ..Default::default()
    };
    match api
        .update(&subscription.id, &off, &follow_up_key(key, "deactivate"))
        .await
    {
        Ok(updated) => updated,
        Err(err) => {
            tracing::warn!(
                subscription_id = %subscription.id,
                error = %err,
                "created an Ivy subscription but could not deactivate it yet"
            );
            subscription
        }
    }
}

/// An answer from a route no Ivy document defines, read for what it shows about the route.
///
/// A 2xx shows the route exists; [`IvyError::Unsupported`] (a 405, or a 404 to a call about no
/// particular subscription) that it does not. A 404 about an id is ambiguous: no such
/// subscription, or no such route. Once the route has answered 2xx it is the former; before
/// that, `exists` asks a route whose answer is not ambiguous whether the id exists:
/// it does, so the route is missing (`unsupported`); it does not, so [`IvyError::NotFound`];
/// `exists` is itself unsupported, so the whole family of guessed routes is taken as missing.
pub(crate) async fn on_undocumented_route<F, Fut>(
    route: &RouteState,
    unsupported: IvyError,
    answer: Result<RawResponse, IvyError>,
    exists: F,
) -> Result<RawResponse, IvyError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<bool, IvyError>>,
{
    match answer {
        Ok(response) => {
            route.mark_present();
            Ok(response)
        }
        Err(IvyError::Unsupported { .. }) => {
            route.mark_missing();
            Err(unsupported)
        }
        Err(not_found @ IvyError::NotFound { .. }) if !route.is_present() => match exists().await {
            Ok(false) => Err(not_found),
            Ok(true) | Err(IvyError::Unsupported { .. }) => {
                route.mark_missing();
                Err(unsupported)
            }
            Err(other) => Err(other),
        },
        Err(other) => Err(other),
    }
}

/// An idempotency key for the follow-up call a create needs in dialects that cannot set every
/// field at creation (e.g. `active: false`): derived from the create's key so a replayed
/// create replays the follow-up too.
pub(crate) fn follow_up_key(key: &IdempotencyKey, suffix: &str) -> IdempotencyKey {
    let mut value = key.as_str().to_owned();
    let room = IdempotencyKey::MAX_LEN.saturating_sub(suffix.len() + 1);
    if value.len() > room {
        // Keys are visible ASCII, so any byte index is a char boundary.
        value.truncate(room);
    }
    value.push(':');
    value.push_str(suffix);
    IdempotencyKey::new(value).unwrap_or_else(|_| IdempotencyKey::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(n: usize) -> RemoteSubscription {
        RemoteSubscription {
            id: n.to_string(),
            url: "https://a.example/".into(),
            events: vec!["test".into()],
            description: None,
            active: None,
        }
    }

    #[tokio::test]
    async fn pages_are_walked_with_the_offset_and_the_previous_cursor() {
        let mut seen = Vec::new();
        let all = collect_pages(|offset, cursor: Option<usize>| {
            seen.push((offset, cursor));
            let page = cursor.unwrap_or(0);
            async move {
                Ok(ListPage {
                    items: vec![sub(page * 2), sub(page * 2 + 1)],
                    next: (page < 2).then_some(page + 1),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(seen, [(0, None), (2, Some(1)), (4, Some(2))]);
    }

    #[tokio::test]
    async fn a_list_that_never_ends_is_malformed() {
        let err = collect_pages(|offset, _| async move {
            Ok(ListPage {
                items: vec![sub(offset)],
                next: Some(()),
            })
        })
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            IvyError::MalformedResponse {
                operation: "list",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn short_pages_are_followed_by_the_next_field_and_duplicates_dropped() {
        // Pages of 1, 3 and 2 items; the second repeats one of the first (an offset shift).
        let pages = [vec![0], vec![0, 1, 2], vec![3, 4]];
        let mut offsets = Vec::new();
        let all = collect_pages(|offset, cursor: Option<usize>| {
            offsets.push(offset);
            let n = cursor.unwrap_or(0);
            let items = pages[n].iter().map(|i| sub(*i)).collect();
            async move {
                Ok(ListPage {
                    items,
                    next: (n < 2).then_some(n + 1),
                })
            }
        })
        .await
        .unwrap();
        let ids: Vec<_> = all.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["0", "1", "2", "3", "4"]);
        assert_eq!(offsets, [0, 1, 4]);
    }

    #[tokio::test]
    async fn a_page_that_brings_nothing_new_ends_the_walk() {
        // A server that ignores the offset: the same page again, and again.
        let mut calls = 0;
        let all = collect_pages(|_, _| {
            calls += 1;
            async {
                Ok(ListPage {
                    items: vec![sub(0), sub(1)],
                    next: Some(()),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(calls, 2);
    }

    #[test]
    fn follow_up_keys_stay_valid_and_deterministic() {
        let long = IdempotencyKey::new("k".repeat(255)).unwrap();
        let a = follow_up_key(&long, "deactivate");
        assert!(a.as_str().len() <= 255);
        assert!(a.as_str().ends_with(":deactivate"));
        assert_eq!(a, follow_up_key(&long, "deactivate"));
    }
}
