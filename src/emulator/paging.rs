//! One page of a merchant's subscriptions for the three list verbs: where it starts (an offset
//! or a cursor), how long it is, and in what order its items come, with the list quirks
//! applied (`unpaged-lists`: everything in one page, no paging fields; `short-pages`: half
//! the requested size, items in reverse order). Each dialect puts the page in its envelope.

use super::model::{Filter, Merchant, Subscription};
use super::quirks::Quirks;
use super::store::Store;

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// After skipping this many (`rest`'s `offset`, `service`'s `skip`).
    Offset(usize),
    /// After the subscription with this sequence number (`internal`'s cursor; 0: the first).
    After(u64),
}

/// What a list request asked for.
#[derive(Clone, Debug)]
pub(crate) struct PageRequest {
    pub start: Start,
    pub limit: usize,
    pub filter: Filter,
}

impl PageRequest {
    /// Whether this asks for the first page (counted as `list`; later pages as `list-page`).
    pub fn is_first(&self) -> bool {
        matches!(self.start, Start::Offset(0) | Start::After(0))
    }
}

/// One page, ready for a dialect's envelope.
#[derive(Debug)]
pub(crate) struct Page<'a> {
    pub items: Vec<&'a Subscription>,
    /// How many subscriptions match in all.
    pub total: usize,
    /// More follow after this page.
    pub has_more: bool,
    /// The sequence number a cursor for the next page starts after (when `has_more`).
    pub next_after: Option<u64>,
    /// False under `unpaged-lists`: the envelope carries its items and nothing else.
    pub paged: bool,
}

/// The page `request` asks for, as the quirks shape it. Unfiltered pages are slices of the
/// store's per-merchant order; only filtered and unpaged lists walk the merchant's list.
pub(crate) fn page<'a>(
    store: &'a Store,
    merchant: Merchant,
    request: &PageRequest,
    quirks: &Quirks,
) -> Page<'a> {
    if quirks.unpaged_lists {
        let mut items = store.list(merchant, &request.filter);
        if quirks.short_pages {
            items.reverse();
        }
        return Page {
            total: items.len(),
            items,
            has_more: false,
            next_after: None,
            paged: false,
        };
    }
    let size = if quirks.short_pages {
        request.limit.div_ceil(2)
    } else {
        request.limit
    };
    let (mut items, total, has_more) = if request.filter.is_empty() {
        let total = store.count(merchant);
        match request.start {
            Start::Offset(offset) => {
                let items = store.page_at(merchant, offset, size);
                let has_more = offset.saturating_add(items.len()) < total;
                (items, total, has_more)
            }
            Start::After(seq) => {
                let (items, has_more) = store.page_after(merchant, seq, size);
                (items, total, has_more)
            }
        }
    } else {
        let all = store.list(merchant, &request.filter);
        let from = match request.start {
            Start::Offset(offset) => offset.min(all.len()),
            Start::After(seq) => all.partition_point(|s| s.seq <= seq),
        };
        let to = from.saturating_add(size).min(all.len());
        (all[from..to].to_vec(), all.len(), to < all.len())
    };
    let next_after = items.last().filter(|_| has_more).map(|s| s.seq);
    if quirks.short_pages {
        items.reverse();
    }
    Page {
        items,
        total,
        has_more,
        next_after,
        paged: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::model::NewSubscription;
    use crate::ivy::Dialect;

    const M: Merchant = Merchant(0);

    fn store_with(n: usize) -> Store {
        let mut store = Store::default();
        for i in 0..n {
            let new = NewSubscription {
                url: format!("https://p.example/{i}"),
                events: vec![if i % 2 == 0 { "test" } else { "order_created" }.into()],
                description: None,
                active: true,
            };
            store.create(M, Dialect::Rest, new, false).unwrap();
        }
        store
    }

    fn request(start: Start, limit: usize) -> PageRequest {
        PageRequest {
            start,
            limit,
            filter: Filter::default(),
        }
    }

    fn numbers(page: &Page<'_>) -> Vec<usize> {
        page.items
            .iter()
            .map(|s| s.url.rsplit('/').next().unwrap().parse().unwrap())
            .collect()
    }

    #[test]
    fn without_quirks_pages_are_full_and_in_creation_order() {
        let store = store_with(5);
        let quirks = Quirks::none();
        let first = page(&store, M, &request(Start::Offset(0), 2), &quirks);
        assert_eq!(
            (numbers(&first), first.total, first.has_more),
            (vec![0, 1], 5, true)
        );
        let last = page(&store, M, &request(Start::Offset(4), 2), &quirks);
        assert_eq!(
            (numbers(&last), last.has_more, last.next_after),
            (vec![4], false, None)
        );
        let by_cursor = page(
            &store,
            M,
            &request(Start::After(first.next_after.unwrap()), 2),
            &quirks,
        );
        assert_eq!(numbers(&by_cursor), [2, 3]);
        assert!(first.paged);
    }

    #[test]
    fn short_pages_hold_half_the_limit_in_reverse_and_the_cursor_still_walks_everything() {
        let store = store_with(7);
        let quirks = Quirks::parse("short-pages").unwrap();
        let first = page(&store, M, &request(Start::Offset(0), 4), &quirks);
        assert_eq!(numbers(&first), [1, 0]);
        assert!(first.has_more);
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let p = page(&store, M, &request(Start::After(after), 4), &quirks);
            seen.extend(numbers(&p));
            match p.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<_>>());
        assert_eq!(
            page(&store, M, &request(Start::Offset(0), 1), &quirks)
                .items
                .len(),
            1
        );
    }

    #[test]
    fn unpaged_lists_answer_everything_once_without_paging() {
        let store = store_with(5);
        let quirks = Quirks::parse("unpaged-lists").unwrap();
        let all = page(&store, M, &request(Start::Offset(3), 2), &quirks);
        assert_eq!(numbers(&all), [0, 1, 2, 3, 4]);
        assert!(!all.paged && !all.has_more);
        let reversed = Quirks::parse("unpaged-lists,short-pages").unwrap();
        assert_eq!(
            numbers(&page(&store, M, &request(Start::Offset(0), 2), &reversed)),
            [4, 3, 2, 1, 0]
        );
    }

    #[test]
    fn filters_page_over_the_matching_subscriptions_only() {
        let store = store_with(6);
        let filtered = PageRequest {
            start: Start::Offset(1),
            limit: 1,
            filter: Filter {
                event: Some("test".into()),
                ..Default::default()
            },
        };
        let p = page(&store, M, &filtered, &Quirks::none());
        assert_eq!((numbers(&p), p.total, p.has_more), (vec![2], 3, true));
    }

    #[test]
    fn only_a_request_from_the_start_is_a_first_page() {
        assert!(request(Start::Offset(0), 5).is_first());
        assert!(request(Start::After(0), 5).is_first());
        assert!(!request(Start::Offset(5), 5).is_first());
        assert!(!request(Start::After(9), 5).is_first());
    }
}
