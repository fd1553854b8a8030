//! Reading a 2xx body into a dialect's wire type, and the small JSON helpers error-body parsers
//! use. A body that cannot be read is [`IvyError::MalformedResponse`], never a panic, and the
//! error never repeats a value from the body (a misplaced field could hold the signing secret).
//!
//! Tolerant where Ivy's documents leave things open: unknown fields are ignored, ids may be
//! JSON strings or numbers, a list may be a bare array or any envelope holding its items.
//! Strict where they are not: a created subscription without an id or its secret is an error.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, DeserializeOwned, Visitor};
use serde_json::{Map, Value};

use super::transport::RawResponse;
use crate::ivy::error::IvyError;
use crate::ivy::redacted::SigningSecret;

/// Decodes a 2xx body into a dialect's wire type; anything else is
/// [`IvyError::MalformedResponse`].
pub(crate) fn decode<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
) -> Result<T, IvyError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Err(IvyError::MalformedResponse {
            operation,
            message: format!("HTTP {} with an empty body", response.status.as_u16()),
        });
    }
    serde_json::from_slice(&response.body).map_err(|e| IvyError::MalformedResponse {
        operation,
        message: describe_json_error(&e),
    })
}

fn malformed(operation: &'static str, message: impl Into<String>) -> IvyError {
    IvyError::MalformedResponse {
        operation,
        message: message.into(),
    }
}

fn describe_json_error(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {} column {}", err.line(), err.column());
    match err.classify() {
        Category::Syntax => format!("the body is not JSON ({at})"),
        Category::Eof => format!("the JSON body ends early ({at})"),
        Category::Io => "the body could not be read".to_owned(),
        Category::Data => {
            let text = err.to_string();
            // serde names missing fields without quoting values; every other data error may
            // quote a value from the body, so only its position is reported.
            if text.starts_with("missing field") {
                text
            } else {
                format!("unexpected JSON shape ({at})")
            }
        }
    }
}

/// What went wrong in a value already parsed as JSON (no position to report).
fn describe_value_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    if text.starts_with("missing field") {
        text
    } else {
        "unexpected JSON shape".to_owned()
    }
}

/// A list answer, read without assuming its envelope: the items, and the envelope's other
/// fields for the dialect to find its paging fields in.
pub(crate) struct ListAnswer<T> {
    pub items: Vec<T>,
    envelope: Map<String, Value>,
}

impl<T> ListAnswer<T> {
    /// The first of `names` the envelope holds as a boolean.
    pub fn flag(&self, names: &[&str]) -> Option<bool> {
        names.iter().find_map(|n| self.envelope.get(*n)?.as_bool())
    }

    /// The first of `names` the envelope holds as a non-negative integer.
    pub fn count(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| usize::try_from(self.envelope.get(*n)?.as_u64()?).ok())
    }

    /// The first of `names` the envelope holds as a non-empty string or a number (a cursor);
    /// `null` and `""` are no cursor.
    pub fn token(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|n| match self.envelope.get(*n)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    }
}

/// Reads a list answer: a bare JSON array of items, or an object holding them under the first
/// of `item_keys` it has (`null` there is an empty list).
pub(crate) fn decode_list<T: DeserializeOwned>(
    operation: &'static str,
    response: &RawResponse,
    item_keys: &[&str],
) -> Result<ListAnswer<T>, IvyError> {
    let (items, envelope) = match decode::<Value>(operation, response)? {
        Value::Array(items) => (items, Map::new()),
        Value::Object(mut envelope) => {
            let Some(key) = item_keys.iter().find(|k| envelope.contains_key(**k)) else {
                return Err(malformed(
                    operation,
                    format!("the list answer has no `{}` array", item_keys.join("`/`")),
                ));
            };
            match envelope.remove(*key) {
                Some(Value::Array(items)) => (items, envelope),
                Some(Value::Null) => (Vec::new(), envelope),
                _ => return Err(malformed(operation, format!("`{key}` is not an array"))),
            }
        }
        _ => {
            return Err(malformed(
                operation,
                "the list answer is neither an array nor an object",
            ));
        }
    };
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item).map_err(|e| {
                malformed(operation, format!("item {i}: {}", describe_value_error(&e)))
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ListAnswer { items, envelope })
}

/// `deserialize_with` for an id: a JSON string or integer, as a non-empty string.
pub(crate) fn id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct IdVisitor;

    impl Visitor<'_> for IdVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty string or an integer")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
            if value.trim().is_empty() {
                Err(E::custom("the id is empty"))
            } else {
                Ok(value.to_owned())
            }
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
            Ok(value.to_string())
        }
    }

    deserializer.deserialize_any(IdVisitor)
}

/// The signing secret of a create answer; an empty one is no secret at all.
pub(crate) fn signing_secret(
    operation: &'static str,
    value: String,
) -> Result<SigningSecret, IvyError> {
    if value.trim().is_empty() {
        Err(malformed(operation, "the signing secret is empty"))
    } else {
        Ok(SigningSecret::new(value))
    }
}

/// Whether a 2xx body explicitly says `field: false` (e.g. `{"deleted": false}`). Any other
/// body, an empty or unreadable one included, says nothing against the status.
pub(crate) fn says_false(response: &RawResponse, field: &str) -> bool {
    json_value(&response.body).and_then(|v| v.get(field)?.as_bool()) == Some(false)
}

/// Parses `body` as JSON without failing: error-body parsers use it.
pub(crate) fn json_value(body: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body).ok()
}

/// A string field of a JSON object, if present.
pub(crate) fn str_field(value: &serde_json::Value, name: &str) -> Option<String> {
    value.get(name).and_then(|v| v.as_str()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;

    use super::*;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            retry_after: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn decode_rejects_empty_non_json_and_misshapen_bodies_without_echoing_values() {
        #[derive(serde::Deserialize, Debug)]
        struct Thing {
            #[allow(dead_code)]
            id: u32,
        }
        for (body, expect) in [
            ("", "empty body"),
            ("  \n", "empty body"),
            ("<html>oops</html>", "not JSON"),
            ("{\"id\": 1", "ends early"),
            ("{}", "missing field `id`"),
            ("{\"id\": \"whsec_secret\"}", "unexpected JSON shape"),
        ] {
            let err = decode::<Thing>("get", &raw(200, body)).unwrap_err();
            let text = err.to_string();
            assert!(matches!(
                err,
                IvyError::MalformedResponse {
                    operation: "get",
                    ..
                }
            ));
            assert!(text.contains(expect), "{body:?} -> {text}");
            assert!(!text.contains("whsec_secret"), "{text}");
        }
    }

    #[test]
    fn a_list_is_read_from_a_bare_array_or_the_first_item_key_present() {
        #[derive(serde::Deserialize)]
        struct Item {
            #[serde(deserialize_with = "id")]
            id: String,
        }
        let ids = |body: &str| -> Vec<String> {
            decode_list::<Item>("list", &raw(200, body), &["items", "data"])
                .unwrap()
                .items
                .into_iter()
                .map(|i| i.id)
                .collect()
        };
        assert_eq!(ids(r#"[{"id":"a"},{"id":2}]"#), ["a", "2"]);
        assert_eq!(ids(r#"{"data":[{"id":"b","extra":true}],"page":1}"#), ["b"]);
        assert_eq!(ids(r#"{"items":null}"#), Vec::<String>::new());
        for (body, expect) in [
            (r#"{"total":1}"#, "no `items`/`data` array"),
            (r#"{"items":{"id":"a"}}"#, "`items` is not an array"),
            ("7", "neither an array nor an object"),
            (
                r#"[{"id":"a"},{"name":"whsec_x"}]"#,
                "item 1: missing field `id`",
            ),
            (r#"[{"id":1.5}]"#, "item 0: unexpected JSON shape"),
            (r#"[{"id":""}]"#, "item 0: unexpected JSON shape"),
        ] {
            let err = decode_list::<Item>("list", &raw(200, body), &["items", "data"])
                .err()
                .unwrap();
            let text = err.to_string();
            assert!(text.contains(expect), "{body}: {text}");
            assert!(!text.contains("whsec_x"), "{text}");
        }
    }

    #[test]
    fn paging_fields_are_found_by_any_of_their_names_and_type() {
        let body =
            r#"{"items":[],"hasMore":true,"total":"12","count":3,"next_cursor":"","cursor2":9}"#;
        let page = decode_list::<serde_json::Value>("list", &raw(200, body), &["items"]).unwrap();
        assert_eq!(page.flag(&["has_more", "hasMore"]), Some(true));
        assert_eq!(page.flag(&["missing"]), None);
        // A string is no count: the next name is tried.
        assert_eq!(page.count(&["total", "count"]), Some(3));
        // An empty cursor is no cursor; a number is one.
        assert_eq!(page.token(&["next_cursor"]), None);
        assert_eq!(page.token(&["next_cursor", "cursor2"]), Some("9".into()));
    }

    #[test]
    fn an_empty_signing_secret_is_malformed() {
        assert!(signing_secret("create", " ".into()).is_err());
        assert_eq!(
            signing_secret("create", "whsec_a".into()).unwrap().expose(),
            "whsec_a"
        );
    }

    #[test]
    fn only_an_explicit_false_says_false() {
        assert!(says_false(&raw(200, r#"{"deleted":false}"#), "deleted"));
        for body in [
            "",
            "{}",
            r#"{"deleted":true}"#,
            r#"{"deleted":"false"}"#,
            "<html>",
        ] {
            assert!(!says_false(&raw(200, body), "deleted"), "{body}");
        }
    }
}
