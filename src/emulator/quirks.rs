//! Quirk profiles: answers a real Ivy may give where its API documents are silent, so a client
//! can be tested against an emulator less friendly than the default one. This module owns the
//! set of quirks and its text form (`--quirks bare-409,json-404`, `IVY_EMULATOR_QUIRKS`);
//! the server, the error answers and the list handlers apply them. Each profile is described
//! in `docs/ivy-emulator.md`.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// `proxy-502` without `=N`: every 10th dialect request.
pub const DEFAULT_PROXY_502_EVERY: NonZeroU64 = match NonZeroU64::new(10) {
    Some(every) => every,
    None => NonZeroU64::MIN,
};

/// The profile names, as `--help` and error messages list them.
pub const PROFILES: &str = "bare-409, text-409, reworded-409, mixed-409, unpaged-lists, \
     short-pages, json-404, documented-only, proxy-502[=N], no-idempotency, unfriendly, none";

/// How the body of every 409 looks under a conflict quirk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictBody {
    /// No body at all (`bare-409`).
    Empty,
    /// `text/plain` `Conflict` (`text-409`).
    PlainText,
    /// JSON in the dialect's error shape with a generic code and a wording that names neither
    /// the URL nor idempotency (`reworded-409`).
    Reworded,
    /// The three above in turn, one per 409 answered (`mixed-409`).
    Mixed,
}

impl ConflictBody {
    fn name(self) -> &'static str {
        match self {
            ConflictBody::Empty => "bare-409",
            ConflictBody::PlainText => "text-409",
            ConflictBody::Reworded => "reworded-409",
            ConflictBody::Mixed => "mixed-409",
        }
    }
}

/// The quirks an emulator runs with. `Default` is none: the friendly, documented emulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// 409 bodies without the emulator's codes. Where several are named, the last one wins.
    pub conflict_body: Option<ConflictBody>,
    /// List answers carry only their items (no total, cursor, `has_more`, …) and hold every
    /// subscription in one page, whatever the limit (`unpaged-lists`).
    pub unpaged_lists: bool,
    /// Pages hold half the requested limit (rounded up), items within a page in reverse
    /// creation order (`short-pages`).
    pub short_pages: bool,
    /// Unknown routes answer 404 with a JSON body (`json-404`).
    pub json_404: bool,
    /// Only the verbs the API documents are served: not `internal`'s get, list, delete and
    /// trigger-test, nor `rest`'s `POST /webhook/{id}/test` (`documented-only`).
    pub documented_only: bool,
    /// Every Nth dialect request answers an HTML 502, as a proxy in front of Ivy would; the
    /// request never reaches the model (`proxy-502[=N]`).
    pub proxy_502_every: Option<NonZeroU64>,
    /// `Idempotency-Key` is ignored (`no-idempotency`).
    pub no_idempotency: bool,
}

/// A `--quirks` value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuirksError {
    #[error("unknown quirk profile {0:?} (known: {PROFILES})")]
    Unknown(String),
    #[error("proxy-502 takes a whole number of requests of at least 1 (proxy-502=10), not {0:?}")]
    BadProxyEvery(String),
}

impl Quirks {
    /// No quirks: the friendly emulator.
    pub fn none() -> Self {
        Self::default()
    }

    /// Every quirk under which a correct client still converges, for end-to-end and chaos
    /// runs: `mixed-409`, `short-pages`, `json-404`, `proxy-502` (every 10th request) and
    /// `no-idempotency`. Not `documented-only` (it takes verbs away) nor `unpaged-lists`
    /// (add it for the minimal list envelope: `unfriendly,unpaged-lists`).
    pub fn unfriendly() -> Self {
        Self {
            conflict_body: Some(ConflictBody::Mixed),
            unpaged_lists: false,
            short_pages: true,
            json_404: true,
            documented_only: false,
            proxy_502_every: Some(DEFAULT_PROXY_502_EVERY),
            no_idempotency: true,
        }
    }

    /// Reads a comma-separated list of profiles (`bare-409,json-404`; empty or `none`: no
    /// quirks). Later profiles add to earlier ones; of two 409 styles or two `proxy-502` rates
    /// the later one wins, so `unfriendly,bare-409` is `unfriendly` with empty 409 bodies.
    pub fn parse(text: &str) -> Result<Self, QuirksError> {
        let mut quirks = Self::none();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            quirks.add(name)?;
        }
        Ok(quirks)
    }

    fn add(&mut self, name: &str) -> Result<(), QuirksError> {
        if let Some(every) = name.strip_prefix("proxy-502=") {
            let every = every
                .parse::<NonZeroU64>()
                .map_err(|_| QuirksError::BadProxyEvery(every.to_owned()))?;
            self.proxy_502_every = Some(every);
            return Ok(());
        }
        match name {
            "none" => {}
            "bare-409" => self.conflict_body = Some(ConflictBody::Empty),
            "text-409" => self.conflict_body = Some(ConflictBody::PlainText),
            "reworded-409" => self.conflict_body = Some(ConflictBody::Reworded),
            "mixed-409" => self.conflict_body = Some(ConflictBody::Mixed),
            "unpaged-lists" => self.unpaged_lists = true,
            "short-pages" => self.short_pages = true,
            "json-404" => self.json_404 = true,
            "documented-only" => self.documented_only = true,
            "proxy-502" => self.proxy_502_every = Some(DEFAULT_PROXY_502_EVERY),
            "no-idempotency" => self.no_idempotency = true,
            "unfriendly" => {
                let unfriendly = Self::unfriendly();
                self.conflict_body = unfriendly.conflict_body;
                self.short_pages = true;
                self.json_404 = true;
                self.proxy_502_every = unfriendly.proxy_502_every;
                self.no_idempotency = true;
            }
            other => return Err(QuirksError::Unknown(other.to_owned())),
        }
        Ok(())
    }

    /// No quirk is on.
    pub fn is_none(&self) -> bool {
        *self == Self::none()
    }

    /// The profiles that are on, one name each, in a fixed order.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(style) = self.conflict_body {
            names.push(style.name().to_owned());
        }
        let flags = [
            (self.unpaged_lists, "unpaged-lists"),
            (self.short_pages, "short-pages"),
            (self.json_404, "json-404"),
            (self.documented_only, "documented-only"),
        ];
        names.extend(
            flags
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| (*n).to_owned()),
        );
        if let Some(every) = self.proxy_502_every {
            names.push(format!("proxy-502={every}"));
        }
        if self.no_idempotency {
            names.push("no-idempotency".to_owned());
        }
        names
    }
}

impl FromStr for Quirks {
    type Err = QuirksError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The canonical text form (`none` when no quirk is on); [`Quirks::parse`] reads it back.
impl fmt::Display for Quirks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_none() {
            f.write_str("none")
        } else {
            f.write_str(&self.names().join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_or_none_means_no_quirks() {
        assert!(Quirks::parse("").unwrap().is_none());
        assert!(Quirks::parse(" none ").unwrap().is_none());
        assert_eq!(Quirks::none().to_string(), "none");
    }

    #[test]
    fn profiles_add_up_and_the_last_conflict_style_wins() {
        let quirks = Quirks::parse("bare-409, json-404,short-pages,text-409").unwrap();
        assert_eq!(quirks.conflict_body, Some(ConflictBody::PlainText));
        assert!(quirks.json_404 && quirks.short_pages);
        assert!(!quirks.unpaged_lists && !quirks.no_idempotency);
    }

    #[test]
    fn proxy_502_takes_an_optional_positive_period() {
        assert_eq!(
            Quirks::parse("proxy-502").unwrap().proxy_502_every,
            Some(DEFAULT_PROXY_502_EVERY)
        );
        assert_eq!(
            Quirks::parse("proxy-502=3").unwrap().proxy_502_every,
            NonZeroU64::new(3)
        );
        for bad in ["proxy-502=0", "proxy-502=x", "proxy-502="] {
            assert!(
                matches!(Quirks::parse(bad), Err(QuirksError::BadProxyEvery(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_profiles_are_refused_with_the_known_ones_listed() {
        let err = Quirks::parse("json-404,grumpy").unwrap_err();
        assert_eq!(err, QuirksError::Unknown("grumpy".into()));
        assert!(err.to_string().contains("bare-409"));
    }

    #[test]
    fn unfriendly_is_every_convergent_quirk_and_can_be_refined() {
        let unfriendly = Quirks::parse("unfriendly").unwrap();
        assert_eq!(unfriendly, Quirks::unfriendly());
        assert!(!unfriendly.documented_only && !unfriendly.unpaged_lists);
        let refined = Quirks::parse("unfriendly,bare-409,unpaged-lists,proxy-502=50").unwrap();
        assert_eq!(refined.conflict_body, Some(ConflictBody::Empty));
        assert!(refined.unpaged_lists && refined.short_pages && refined.no_idempotency);
        assert_eq!(refined.proxy_502_every, NonZeroU64::new(50));
    }

    #[test]
    fn the_text_form_reads_back_to_the_same_quirks() {
        for text in [
            "none",
            "unfriendly",
            "reworded-409,documented-only,json-404",
            "mixed-409,unpaged-lists,proxy-502=7,no-idempotency",
        ] {
            let quirks = Quirks::parse(text).unwrap();
            assert_eq!(
                Quirks::parse(&quirks.to_string()).unwrap(),
                quirks,
                "{text}"
            );
        }
        assert_eq!(
            Quirks::unfriendly().to_string(),
            "mixed-409,short-pages,json-404,proxy-502=10,no-idempotency"
        );
    }
}
