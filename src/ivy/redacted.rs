//! Newtypes for the two values that must never be printed: the API key and a signing secret.
//!
//! Each holds a [`secrecy::SecretString`] (zeroed when dropped). Their `Debug` and `Display`
//! print `<redacted>`; the value is reachable only through [`SigningSecret::expose`] /
//! [`ApiKey::expose`], so every read is visible in review. Equality compares in constant time.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

macro_rules! redacted_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            /// Wraps a value; it is never printed from here on.
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// The raw value, for the one place that must send or store it.
            pub fn expose(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose().as_bytes().ct_eq(other.expose().as_bytes()).into()
            }
        }

        impl Eq for $name {}

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(<redacted>)", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<redacted>")
            }
        }
    };
}

redacted_string!(
    /// A webhook signing secret (`whsec_…`): the HMAC key receivers verify deliveries with.
    SigningSecret
);

redacted_string!(
    /// The merchant's Ivy API key, sent as `X-Ivy-Api-Key`.
    ApiKey
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = SigningSecret::new("whsec_topsecret");
        let key = ApiKey::new("ak_live_topsecret");
        for printed in [
            format!("{secret:?}"),
            format!("{secret}"),
            format!("{key:?}"),
            format!("{key}"),
            format!("{:?}", Some(&secret)),
        ] {
            assert!(!printed.contains("topsecret"), "leaked in {printed}");
            assert!(printed.contains("<redacted>"));
        }
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(SigningSecret::new("whsec_x").expose(), "whsec_x");
    }

    #[test]
    fn equal_values_are_equal_and_others_are_not() {
        assert_eq!(SigningSecret::new("whsec_a"), SigningSecret::new("whsec_a"));
        assert_ne!(SigningSecret::new("whsec_a"), SigningSecret::new("whsec_b"));
        assert_ne!(
            SigningSecret::new("whsec_a"),
            SigningSecret::new("whsec_ab")
        );
        assert_eq!(ApiKey::new("k").clone(), ApiKey::new("k"));
    }
}
