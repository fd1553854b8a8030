//! Webhook signatures: how Ivy signs a delivery and how a receiver checks it.
//!
//! Ivy sends `X-Ivy-Signature: <lowercase hex HMAC-SHA256(raw body, signing secret)>`, with no
//! timestamp. A receiver must compute the MAC over the exact bytes it received (not over
//! re-serialised JSON) and compare in constant time.
//!
//! ```
//! use ivy_webhook_operator::ivy::{SigningSecret, sign, verify_signature};
//!
//! let secret = SigningSecret::new("whsec_example");
//! let body = br#"{"id":"1","type":"test","payload":{},"date":"2024-01-15T10:30:00Z"}"#;
//! let header = sign(&secret, body); // what Ivy puts in X-Ivy-Signature
//!
//! assert!(verify_signature(&secret, body, &header).is_ok());
//! assert!(verify_signature(&secret, b"tampered", &header).is_err());
//! assert!(verify_signature(&SigningSecret::new("whsec_other"), body, &header).is_err());
//! ```

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::redacted::SigningSecret;

type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 MAC in bytes.
const MAC_LEN: usize = 32;

/// Why a signature header was refused. Never carries the secret or the expected MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is empty (after trimming).
    #[error("the X-Ivy-Signature header is empty")]
    Missing,
    /// The header is not 64 hexadecimal characters.
    #[error("the X-Ivy-Signature header is not a hex-encoded HMAC-SHA256")]
    Malformed,
    /// The header is well formed but does not match the body and secret.
    #[error("the X-Ivy-Signature header does not match the body")]
    Mismatch,
}

fn mac(secret: &SigningSecret, raw_body: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length, so this constructor cannot fail; falling back to an
    // empty-keyed MAC would only ever produce a signature that fails to verify.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| <HmacSha256 as Mac>::new(&Default::default()));
    mac.update(raw_body);
    mac.finalize().into_bytes().into()
}

/// The `X-Ivy-Signature` value for `raw_body`: lowercase hex HMAC-SHA256 keyed with `secret`.
pub fn sign(secret: &SigningSecret, raw_body: &[u8]) -> String {
    hex::encode(mac(secret, raw_body))
}

/// Checks an `X-Ivy-Signature` header against the raw body, in constant time.
///
/// Surrounding whitespace is ignored and upper-case hex is accepted; anything that is not
/// exactly 32 hex-encoded bytes is [`SignatureError::Malformed`].
pub fn verify_signature(
    secret: &SigningSecret,
    raw_body: &[u8],
    header: &str,
) -> Result<(), SignatureError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    if header.len() != MAC_LEN * 2 {
        return Err(SignatureError::Malformed);
    }
    let mut given = [0u8; MAC_LEN];
    hex::decode_to_slice(header, &mut given).map_err(|_| SignatureError::Malformed)?;
    let expected = mac(secret, raw_body);
    if bool::from(expected.ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SigningSecret {
        SigningSecret::new("whsec_test")
    }

    #[test]
    fn sign_matches_a_known_hmac_sha256_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(&SigningSecret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_signature_verifies_against_its_own_body() {
        let sig = sign(&secret(), b"{\"a\":1}");
        assert_eq!(verify_signature(&secret(), b"{\"a\":1}", &sig), Ok(()));
    }

    #[test]
    fn surrounding_whitespace_and_uppercase_are_accepted() {
        let sig = sign(&secret(), b"body");
        let header = format!("  {}\n", sig.to_uppercase());
        assert_eq!(verify_signature(&secret(), b"body", &header), Ok(()));
    }

    #[test]
    fn a_changed_body_is_a_mismatch() {
        let sig = sign(&secret(), b"{\"a\":1}");
        assert_eq!(
            verify_signature(&secret(), b"{\"a\": 1}", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_wrong_secret_is_a_mismatch() {
        let sig = sign(&secret(), b"body");
        assert_eq!(
            verify_signature(&SigningSecret::new("whsec_other"), b"body", &sig),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn non_hex_or_wrong_length_is_malformed() {
        let sig = sign(&secret(), b"body");
        let non_hex = format!("{}zz", &sig[..62]);
        for header in [&sig[..63], &sig[..62], non_hex.as_str(), "sha256=abc"] {
            assert_eq!(
                verify_signature(&secret(), b"body", header),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
        assert_eq!(
            verify_signature(&secret(), b"body", "   "),
            Err(SignatureError::Missing)
        );
    }
}
