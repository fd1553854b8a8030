//! `Idempotency-Key` as the emulator honours it: which header values are keys, what makes two
//! requests "the same", and the per-merchant record of first answers.
//!
//! The key rule is the emulator's own, written from the API documents (a key of up to 255
//! characters, scoped to the merchant), never taken from the client: if both sides shared one
//! rule, a wrong rule would agree with itself and no test would notice.

use std::collections::HashMap;

use axum::body::Bytes;

use super::counters::Touched;
use super::model::Merchant;

/// Longest key accepted, in characters (the documents' "up to 255").
pub const MAX_KEY_LEN: usize = 255;

/// Whether a raw header value is a key: 1 to [`MAX_KEY_LEN`] visible ASCII characters
/// (`!` to `~`; no spaces, no control or non-ASCII bytes). Anything else is a 400.
pub fn is_valid_key(raw: &[u8]) -> bool {
    (1..=MAX_KEY_LEN).contains(&raw.len()) && raw.iter().all(u8::is_ascii_graphic)
}

/// What makes two requests "the same" for idempotency: method, path and body (compared as
/// JSON when it parses, so key order and whitespace do not matter).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Fingerprint {
    method: String,
    path: String,
    body: FingerprintBody,
}

#[derive(Clone, Debug, PartialEq)]
enum FingerprintBody {
    Json(serde_json::Value),
    Raw(Bytes),
}

impl Fingerprint {
    pub fn new(method: &str, path: &str, body: &Bytes) -> Self {
        let body = match serde_json::from_slice(body) {
            Ok(value) => FingerprintBody::Json(value),
            Err(_) => FingerprintBody::Raw(body.clone()),
        };
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            body,
        }
    }
}

/// A first answer, replayed byte for byte to a repeat of its request.
#[derive(Clone, Debug)]
pub(crate) struct StoredAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// The subscription the first request changed, for the mutation log of replays.
    pub touched: Option<Touched>,
}

#[derive(Clone, Debug)]
enum Entry {
    /// The first request with this key is still being handled.
    InFlight(Fingerprint),
    Done(Fingerprint, StoredAnswer),
}

/// Where a request with a key stands.
#[derive(Debug)]
pub(crate) enum Begin {
    /// First use of the key: handle the request (the key is now in flight).
    Fresh,
    /// The same request was answered before: send this again.
    Replay(StoredAnswer),
    /// The same request is still being handled.
    StillRunning,
    /// The key was used with a different request.
    Mismatch,
}

/// A key of one merchant.
pub(crate) type Slot = (Merchant, String);

/// The keys seen so far, per merchant. Keys never expire.
#[derive(Debug, Default)]
pub(crate) struct IdempotencyStore {
    entries: HashMap<Slot, Entry>,
}

impl IdempotencyStore {
    pub fn begin(&mut self, slot: &Slot, fingerprint: &Fingerprint) -> Begin {
        match self.entries.get(slot) {
            Some(Entry::Done(first, answer)) if first == fingerprint => {
                Begin::Replay(answer.clone())
            }
            Some(Entry::InFlight(first)) if first == fingerprint => Begin::StillRunning,
            Some(_) => Begin::Mismatch,
            None => {
                self.entries
                    .insert(slot.clone(), Entry::InFlight(fingerprint.clone()));
                Begin::Fresh
            }
        }
    }

    /// Records the answer of a request begun with [`IdempotencyStore::begin`].
    pub fn finish(&mut self, slot: Slot, fingerprint: Fingerprint, answer: StoredAnswer) {
        self.entries.insert(slot, Entry::Done(fingerprint, answer));
    }

    /// Frees a key whose request ended without an answer worth keeping.
    pub fn abandon(&mut self, slot: &Slot) {
        if matches!(self.entries.get(slot), Some(Entry::InFlight(_))) {
            self.entries.remove(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(key: &str) -> Slot {
        (Merchant(0), key.to_owned())
    }

    fn fingerprint(body: &str) -> Fingerprint {
        Fingerprint::new("POST", "/webhook", &Bytes::from(body.to_owned()))
    }

    fn answer() -> StoredAnswer {
        StoredAnswer {
            status: 201,
            content_type: None,
            body: Bytes::from_static(b"{}"),
            touched: None,
        }
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert!(is_valid_key(b"a"));
        assert!(is_valid_key(b"uid-3f1c:rotation/2~!"));
        assert!(is_valid_key(&[b'k'; 255]));
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(&[b'k'; 256]));
        assert!(!is_valid_key(b"two words"));
        assert!(!is_valid_key(b"tab\there"));
        assert!(!is_valid_key("schl\u{fc}ssel".as_bytes()));
    }

    #[test]
    fn the_same_request_compares_as_json_not_as_bytes() {
        assert_eq!(
            fingerprint(r#"{"a":1,"b":[2]}"#),
            fingerprint(r#"{ "b": [2], "a": 1 }"#)
        );
        assert_ne!(fingerprint(r#"{"a":1}"#), fingerprint(r#"{"a":2}"#));
        assert_ne!(
            fingerprint("{"),
            Fingerprint::new("PUT", "/webhook", &Bytes::from_static(b"{"))
        );
    }

    #[test]
    fn a_key_is_fresh_then_running_then_replayed_and_refused_for_another_request() {
        let mut store = IdempotencyStore::default();
        let first = fingerprint(r#"{"url":"a"}"#);
        assert!(matches!(store.begin(&slot("k"), &first), Begin::Fresh));
        assert!(matches!(
            store.begin(&slot("k"), &first),
            Begin::StillRunning
        ));
        store.finish(slot("k"), first.clone(), answer());
        assert!(matches!(store.begin(&slot("k"), &first), Begin::Replay(a) if a.status == 201));
        let other = fingerprint(r#"{"url":"b"}"#);
        assert!(matches!(store.begin(&slot("k"), &other), Begin::Mismatch));
        // Another merchant's key of the same name is its own.
        let theirs = (Merchant(1), "k".to_owned());
        assert!(matches!(store.begin(&theirs, &other), Begin::Fresh));
    }

    #[test]
    fn an_abandoned_key_is_free_but_a_finished_one_stays() {
        let mut store = IdempotencyStore::default();
        let first = fingerprint("{}");
        store.begin(&slot("k"), &first);
        store.abandon(&slot("k"));
        assert!(matches!(store.begin(&slot("k"), &first), Begin::Fresh));
        store.finish(slot("k"), first.clone(), answer());
        store.abandon(&slot("k"));
        assert!(matches!(store.begin(&slot("k"), &first), Begin::Replay(_)));
    }
}
