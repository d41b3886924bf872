//! An accepted webhook as it goes onto the queue (the `WorkQueue` port; SQS in the Lambda):
//! the body exactly as signed, and attributes that let the enricher and the operators' DLQ
//! tools tell events apart without reading bodies.

use std::collections::BTreeMap;

use referral_domain::event::{SERVICE_COMPLETED, Webhook};
use referral_domain::ports::OutgoingMessage;
use referral_domain::redact::customer_ref;

pub const EVENT_ID_ATTRIBUTE: &str = "event_id";
pub const EVENT_TYPE_ATTRIBUTE: &str = "event_type";
/// The customer's ref (`referral_domain::redact::customer_ref`), never the address.
pub const CUSTOMER_REF_ATTRIBUTE: &str = "customer_ref";

/// The message for a webhook that passed validation. Events of another type carry no
/// validated customer, hence no `customer_ref`.
pub fn queue_message(body: String, webhook: &Webhook) -> OutgoingMessage {
    let (event_type, customer) = match webhook {
        Webhook::ServiceCompleted(event) => {
            (SERVICE_COMPLETED, Some(customer_ref(&event.customer.email)))
        }
        Webhook::Other { event_type, .. } => (event_type.as_str(), None),
    };
    let mut attributes = BTreeMap::from([
        (EVENT_ID_ATTRIBUTE.to_owned(), webhook.event_id().to_owned()),
        (EVENT_TYPE_ATTRIBUTE.to_owned(), event_type.to_owned()),
    ]);
    if let Some(customer) = customer {
        attributes.insert(CUSTOMER_REF_ATTRIBUTE.to_owned(), customer);
    }
    OutgoingMessage { body, attributes }
}

/// Whether SQS can carry `text`: it refuses U+FFFE, U+FFFF and the C0 control characters
/// other than tab, line feed and carriage return.
pub fn sqs_can_carry(text: &str) -> bool {
    !text.chars().any(|c| {
        matches!(c, '\u{FFFE}' | '\u{FFFF}') || (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
    })
}

#[cfg(test)]
mod tests {
    use referral_domain::event::parse_webhook;

    use super::*;

    #[test]
    fn attributes_name_the_event_and_only_hash_the_customer() {
        let body = r#"{"event_id":"evt_1","event_type":"service.completed",
            "occurred_at":"2026-11-20T15:04:05Z","customer":{"email":"Jane@Example.com"}}"#;
        let webhook = parse_webhook(body).unwrap();
        let message = queue_message(body.to_owned(), &webhook);
        assert_eq!(message.body, body);
        assert_eq!(
            message.attributes,
            BTreeMap::from([
                ("customer_ref".to_owned(), customer_ref("jane@example.com")),
                ("event_id".to_owned(), "evt_1".to_owned()),
                ("event_type".to_owned(), "service.completed".to_owned()),
            ])
        );
        let other = parse_webhook(r#"{"event_id":"evt_2","event_type":"invoice.paid"}"#).unwrap();
        let message = queue_message(String::new(), &other);
        assert_eq!(message.attributes.len(), 2);
        assert_eq!(message.attributes["event_type"], "invoice.paid");
    }

    #[test]
    fn characters_sqs_refuses() {
        assert!(sqs_can_carry("plain \t\r\n text é 日本 🎉"));
        assert!(!sqs_can_carry("bell \u{7}"));
        assert!(!sqs_can_carry("\u{FFFF}"));
        assert!(!sqs_can_carry("nul \0"));
        assert!(sqs_can_carry("del \u{7f} and c1 \u{85}"));
    }
}
