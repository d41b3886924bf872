//! The HTTP API (payload format 2.0) event API Gateway hands a function: the one builder of
//! such events in the workspace (`local serve`'s webhook route and `referral events apigw`
//! both start from it).

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::http::{HeaderMap, Method};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

/// The request `method target` (a path, with its query if any), its headers and body, as API
/// Gateway passes them: a UTF-8 body as is, and any other (or any, with `base64`)
/// base64-encoded, as it treats a binary one.
pub fn http_request(
    method: Method,
    target: &str,
    headers: HeaderMap,
    body: Vec<u8>,
    base64: bool,
) -> ApiGatewayV2httpRequest {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".to_owned());
    event.route_key = Some(format!("{method} {path}"));
    event.raw_path = Some(path.to_owned());
    event.raw_query_string = Some(query.to_owned());
    event.request_context.route_key = event.route_key.clone();
    event.request_context.stage = Some("$default".to_owned());
    event.request_context.http.method = method;
    event.request_context.http.path = Some(path.to_owned());
    event.request_context.http.protocol = Some("HTTP/1.1".to_owned());
    event.headers = headers;
    let text = if base64 {
        Err(body)
    } else {
        String::from_utf8(body).map_err(|error| error.into_bytes())
    };
    match text {
        Ok(text) => event.body = Some(text),
        Err(bytes) => {
            event.body = Some(STANDARD.encode(bytes));
            event.is_base64_encoded = true;
        }
    }
    event
}

/// Fields of aws_lambda_events' request type that a payload 2.0 event has not: the type
/// also serves a REST API authorizer's request.
const NOT_IN_PAYLOAD_2: &[&str] = &[
    "authorizationToken",
    "httpMethod",
    "identitySource",
    "methodArn",
    "resource",
    "type",
];

/// The event as API Gateway sends it: without the authorizer's fields, absent values, or an
/// empty `stageVariables`.
pub fn to_wire(event: &ApiGatewayV2httpRequest) -> Value {
    let mut wire = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut wire {
        fields.retain(|name, value| {
            let empty = value.is_null()
                || (name == "stageVariables" && value.as_object().is_some_and(Map::is_empty));
            !empty && !NOT_IN_PAYLOAD_2.contains(&name.as_str())
        });
    }
    wire
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_passes_as_is_and_anything_else_in_base64() {
        let text = http_request(
            Method::POST,
            "/webhooks?x=1",
            HeaderMap::new(),
            b"{}".to_vec(),
            false,
        );
        assert_eq!(text.body.as_deref(), Some("{}"));
        assert!(!text.is_base64_encoded);
        assert_eq!(text.raw_path.as_deref(), Some("/webhooks"));
        assert_eq!(text.raw_query_string.as_deref(), Some("x=1"));
        assert_eq!(text.route_key.as_deref(), Some("POST /webhooks"));

        let binary = http_request(
            Method::POST,
            "/webhooks",
            HeaderMap::new(),
            vec![0xff, 0],
            false,
        );
        assert_eq!(binary.body.as_deref(), Some("/wA="));
        assert!(binary.is_base64_encoded);

        let forced = http_request(
            Method::POST,
            "/webhooks",
            HeaderMap::new(),
            b"{}".to_vec(),
            true,
        );
        assert_eq!(forced.body.as_deref(), Some("e30="));
        assert!(forced.is_base64_encoded);
    }

    #[test]
    fn the_wire_form_has_only_payload_2_fields() {
        let wire = to_wire(&http_request(
            Method::POST,
            "/webhooks",
            HeaderMap::new(),
            b"{}".to_vec(),
            false,
        ));
        for field in NOT_IN_PAYLOAD_2.iter().chain(&["stageVariables"]) {
            assert!(wire.get(field).is_none(), "{field}: {wire}");
        }
        assert_eq!(wire["requestContext"]["http"]["method"], "POST", "{wire}");
        assert_eq!(wire["version"], "2.0", "{wire}");
    }
}
