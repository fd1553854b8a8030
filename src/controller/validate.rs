//! Checks the schema cannot express: those that depend on the configured Ivy dialect, and a
//! second look at what the CRD schema already enforces (an older CRD may still be installed).

use crate::crd::{MAX_DESCRIPTION_LEN, MAX_URL_LEN, WebhookSubscription};
use crate::ivy::Capabilities;

/// A spec the operator will not send to Ivy; the message is shown in the `Ready` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// The spec breaks a rule of the resource itself.
    #[error("{0}")]
    Invalid(String),
    /// The spec is valid but the configured dialect cannot honour it.
    #[error("{0}")]
    Unsupported(String),
}

/// Validates `sub` for a dialect with `capabilities`.
pub fn validate(sub: &WebhookSubscription, capabilities: Capabilities) -> Result<(), SpecError> {
    let spec = &sub.spec;
    let url = url::Url::parse(&spec.url)
        .map_err(|e| SpecError::Invalid(format!("spec.url is not a valid URL: {e}")))?;
    if url.scheme() != "https" || url.host_str().is_none_or(str::is_empty) {
        return Err(SpecError::Invalid(
            "spec.url must be an absolute https:// URL with a host".into(),
        ));
    }
    if spec.url.len() > MAX_URL_LEN {
        return Err(SpecError::Invalid(format!(
            "spec.url is longer than {MAX_URL_LEN} characters"
        )));
    }
    if spec.events.is_empty() {
        return Err(SpecError::Invalid(
            "spec.events must name at least one event".into(),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = spec.events.iter().find(|e| !seen.insert(**e)) {
        return Err(SpecError::Invalid(format!(
            "spec.events lists {dup} more than once"
        )));
    }
    if let Some(description) = &spec.description {
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(SpecError::Invalid(format!(
                "spec.description is longer than {MAX_DESCRIPTION_LEN} characters"
            )));
        }
        if description.contains("[ivywh:") {
            return Err(SpecError::Invalid(
                "spec.description must not contain the operator's marker \"[ivywh:\"".into(),
            ));
        }
    }
    if !spec.active && !capabilities.active_flag {
        return Err(SpecError::Unsupported(
            "this Ivy dialect has no active flag: set spec.active to true, or delete the resource to stop deliveries".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{ALL_CAPABILITIES, sub};
    use crate::crd::EventName;

    #[test]
    fn valid_spec_passes() {
        assert_eq!(validate(&sub(), ALL_CAPABILITIES), Ok(()));
    }

    #[test]
    fn http_url_is_invalid() {
        let mut sub = sub();
        sub.spec.url = "http://a.example/h".into();
        assert!(matches!(
            validate(&sub, ALL_CAPABILITIES),
            Err(SpecError::Invalid(m)) if m.contains("https")
        ));
    }

    #[test]
    fn duplicate_event_is_invalid() {
        let mut sub = sub();
        sub.spec.events = vec![EventName::Test, EventName::Test];
        assert!(matches!(
            validate(&sub, ALL_CAPABILITIES),
            Err(SpecError::Invalid(m)) if m.contains("test")
        ));
    }

    #[test]
    fn empty_events_are_invalid() {
        let mut sub = sub();
        sub.spec.events.clear();
        assert!(validate(&sub, ALL_CAPABILITIES).is_err());
    }

    #[test]
    fn marker_text_in_description_is_invalid() {
        let mut sub = sub();
        sub.spec.description = Some("x [ivywh:someone-else]".into());
        assert!(validate(&sub, ALL_CAPABILITIES).is_err());
    }

    #[test]
    fn inactive_needs_an_active_flag() {
        let mut sub = sub();
        sub.spec.active = false;
        let service = Capabilities {
            active_flag: false,
            ..ALL_CAPABILITIES
        };
        assert!(matches!(
            validate(&sub, service),
            Err(SpecError::Unsupported(_))
        ));
        assert_eq!(validate(&sub, ALL_CAPABILITIES), Ok(()));
    }
}
