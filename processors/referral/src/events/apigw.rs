//! API Gateway HTTP API (payload format 2.0) requests, one per webhook, as the ingest
//! function receives them from the `POST /webhooks` route.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::wire::{ACCOUNT, REGION, SentWebhook, hex_of, seed};

/// The HTTP API's id in generated hosts and request contexts.
const API_ID: &str = "r4nd0m1d2x";
const SOURCE_IP: &str = "203.0.113.24";
const USER_AGENT: &str = "referral-events/1 (generated webhook sender)";

/// What the `x-signature` header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Signed as a sender signs: HMAC-SHA256 of `"<t>.<raw body>"` with the secret.
    Valid { secret: String },
    /// Signed with the secret, then one digit of the digest changed: a forged or corrupted
    /// request, refused as `mismatch`.
    Wrong { secret: String },
    /// No header: refused as `missing`.
    None,
}

#[derive(Debug, Clone)]
pub struct ApigwOptions {
    pub signature: Signature,
    /// The body base64-encoded, as API Gateway passes a body it treats as binary.
    pub base64: bool,
    pub sent_at: DateTime<Utc>,
}

/// One request per webhook, in input order.
pub fn requests(webhooks: &[SentWebhook], options: &ApigwOptions) -> Vec<Value> {
    webhooks
        .iter()
        .enumerate()
        .map(|(index, webhook)| request(index, &webhook.body, options))
        .collect()
}

fn request(index: usize, body: &str, options: &ApigwOptions) -> Value {
    // A second apart, as a sender signs each delivery when it sends it: two deliveries of
    // one body are two requests, not one request replayed (which ingest would not queue).
    let sent = options.sent_at + chrono::Duration::seconds(index as i64);
    let t = sent.timestamp();
    let received_ms = sent.timestamp_millis();
    let id_seed = seed(&[b"apigw", body.as_bytes(), &received_ms.to_be_bytes()]);
    let host = format!("{API_ID}.execute-api.{REGION}.amazonaws.com");
    let mut headers = json!({
        "accept": "*/*",
        "content-length": body.len().to_string(),
        "content-type": "application/json",
        "host": host,
        "user-agent": USER_AGENT,
        "x-amzn-trace-id": format!("Root=1-{t:08x}-{}", hex_of(&id_seed, 24)),
        "x-forwarded-for": SOURCE_IP,
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    });
    let signature = match &options.signature {
        Signature::Valid { secret } => Some(referral_ingest::sign(secret, t, body.as_bytes())),
        Signature::Wrong { secret } => {
            Some(corrupt(&referral_ingest::sign(secret, t, body.as_bytes())))
        }
        Signature::None => None,
    };
    if let (Some(signature), Value::Object(map)) = (signature, &mut headers) {
        map.insert("x-signature".to_owned(), Value::String(signature));
    }
    let (body, is_base64) = if options.base64 {
        (STANDARD.encode(body), true)
    } else {
        (body.to_owned(), false)
    };
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks",
        "rawPath": "/webhooks",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": API_ID,
            "http": {
                "method": "POST",
                "path": "/webhooks",
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": USER_AGENT,
            },
            // API Gateway's request ids are 16 characters of base64.
            "requestId": STANDARD.encode(&id_seed[..11]),
            "routeKey": "POST /webhooks",
            "stage": "$default",
            "time": sent.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": received_ms,
        },
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// The header with the digest's last hex digit changed.
fn corrupt(header: &str) -> String {
    let mut text = header.to_owned();
    if let Some(last) = text.pop() {
        text.push(if last == '0' { '1' } else { '0' });
    }
    text
}
