//! What the client has learnt about a route no Ivy document defines: unknown until an answer
//! shows it there (a 2xx) or missing (see `classify` and `dialects::verbs`). Kept per client,
//! for the life of the process.

use std::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const PRESENT: u8 = 1;
const MISSING: u8 = 2;

/// One undocumented route's state; shared by concurrent calls.
#[derive(Debug, Default)]
pub(crate) struct RouteState(AtomicU8);

impl RouteState {
    /// Not known yet: the route is tried.
    pub fn unknown() -> Self {
        Self(AtomicU8::new(UNKNOWN))
    }

    /// The route answered 2xx at least once, so its 404s are about the id.
    pub fn is_present(&self) -> bool {
        self.0.load(Ordering::Relaxed) == PRESENT
    }

    /// The server lacks the route; it is not asked again.
    pub fn is_missing(&self) -> bool {
        self.0.load(Ordering::Relaxed) == MISSING
    }

    pub fn mark_present(&self) {
        self.0.store(PRESENT, Ordering::Relaxed);
    }

    pub fn mark_missing(&self) {
        self.0.store(MISSING, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_starts_unknown_and_keeps_what_it_learns() {
        let route = RouteState::unknown();
        assert!(!route.is_present() && !route.is_missing());
        route.mark_present();
        assert!(route.is_present() && !route.is_missing());
        route.mark_missing();
        assert!(route.is_missing() && !route.is_present());
    }
}
