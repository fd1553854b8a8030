//! Reading an account's credentials from its Secrets: the API key and, for the service
//! dialect, the merchant app's signing secret. Only the registry (for a resource the account
//! admits) and the account controller call this.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::accounts::source::{AccountSource, SecretKeyRef};
use crate::ivy::{ApiKey, SigningSecret};

/// An account's secrets. Equality compares in constant time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub api_key: ApiKey,
    pub app_signing_secret: Option<SigningSecret>,
}

/// A credential could not be read. Messages name the Secret (never its value).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("Secret {namespace}/{name} does not exist")]
    SecretMissing { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no non-empty text value under key {key}")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("failed to read Secret {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Reads the Secrets `source` names.
pub async fn read_credentials(
    client: &Client,
    source: &AccountSource,
) -> Result<Credentials, CredentialsError> {
    let api_key = read_key(client, &source.api_key).await?;
    let app_signing_secret = match &source.app_signing_secret {
        Some(reference) => Some(read_key(client, reference).await?),
        None => None,
    };
    Ok(Credentials {
        api_key: ApiKey::new(api_key),
        app_signing_secret: app_signing_secret.map(SigningSecret::new),
    })
}

async fn read_key(client: &Client, reference: &SecretKeyRef) -> Result<String, CredentialsError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &reference.namespace);
    let secret = api
        .get_opt(&reference.name)
        .await
        .map_err(|source| CredentialsError::Read {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
            source,
        })?
        .ok_or_else(|| CredentialsError::SecretMissing {
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        })?;
    value_of(&secret, &reference.key).ok_or_else(|| CredentialsError::KeyMissing {
        namespace: reference.namespace.clone(),
        name: reference.name.clone(),
        key: reference.key.clone(),
    })
}

/// The trimmed text under `key` (from `data`, or `stringData` of an object not yet stored).
fn value_of(secret: &Secret, key: &str) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok());
    let text = from_data.or_else(|| secret.string_data.as_ref()?.get(key).cloned())?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(key: &str, value: &[u8]) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn the_value_is_trimmed_text() {
        assert_eq!(
            value_of(&secret("api-key", b" key-1\n"), "api-key").as_deref(),
            Some("key-1")
        );
    }

    #[test]
    fn a_missing_empty_or_binary_value_is_no_key() {
        assert_eq!(value_of(&secret("other", b"key-1"), "api-key"), None);
        assert_eq!(value_of(&secret("api-key", b"  \n"), "api-key"), None);
        assert_eq!(value_of(&secret("api-key", &[0xff, 0xfe]), "api-key"), None);
    }
}
