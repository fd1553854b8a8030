//! Reading a 2xx body into a dialect's wire type, and the small JSON helpers error-body parsers
//! use. A body that cannot be read is [`IvyError::MalformedResponse`], never a panic, and the
//! error never repeats a value from the body (a misplaced field could hold the signing secret).

use serde::de::DeserializeOwned;

use super::transport::RawResponse;
use crate::ivy::error::IvyError;

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
}
