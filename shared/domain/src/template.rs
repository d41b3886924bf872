//! The deterministic template generator: the fallback whenever the model cannot answer,
//! and the generator of the embedded run. Same features, same message, always.

use std::future::{Future, ready};

use crate::catalogue::{REFERRAL_CREDIT_DOLLARS, recommend};
use crate::digits::push_decimal;
use crate::features::{CustomerFeatures, LifetimeValue};
use crate::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator};
use crate::prompt::push_sanitised;

pub const TEMPLATE_GENERATOR: &str = "template";

/// Writes the message for a customer.
pub fn template_message(features: Option<&CustomerFeatures>) -> Generated {
    let recommended = recommend(features);
    // Written piece by piece into one string: a message per change makes the per-piece
    // `format!` allocations add up.
    let mut body = String::with_capacity(320);
    body.push_str("Hi ");
    // The first word of the sanitised name; sanitised text has no white space but single
    // spaces, so that word ends at the first space.
    let name_start = body.len();
    if let Some(name) = features.and_then(|f| f.customer_name.as_deref()) {
        push_sanitised(&mut body, name);
        if let Some(space) = body[name_start..].find(' ') {
            body.truncate(name_start + space);
        }
    }
    if body.len() == name_start {
        body.push_str("there");
    }
    body.push_str("! ");
    match features {
        Some(f) if f.lifetime_value == LifetimeValue::High => {
            body.push_str("As one of our most valued customers, thank you for trusting us with ");
            push_decimal(&mut body, f.service_count, 0);
            body.push_str(" services.");
        }
        Some(f) if f.service_count > 1 => {
            body.push_str("Thank you for choosing us for ");
            push_decimal(&mut body, f.service_count, 0);
            body.push_str(" services so far.");
        }
        _ => body.push_str("Thank you for choosing us."),
    }
    body.push_str(" Know a friend or neighbour");
    if let Some(city) = features.and_then(|f| f.property_features.city.as_deref()) {
        body.push_str(" in ");
        push_sanitised(&mut body, city);
    }
    body.push_str(" who could use ");
    body.push_str(recommended.pitch);
    body.push_str("? Refer them and you will both get $");
    push_decimal(&mut body, REFERRAL_CREDIT_DOLLARS, 0);
    body.push_str(" off their first visit.");
    Generated {
        recommended_service: recommended.id.to_owned(),
        body,
        generator: TEMPLATE_GENERATOR,
        model_id: None,
        usage: None,
    }
}

/// The template as a [`MessageGenerator`]; it never fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateGenerator;

impl MessageGenerator for TemplateGenerator {
    fn generate(
        &self,
        request: GenerationRequest<'_>,
    ) -> impl Future<Output = Result<Generated, GenerationError>> + Send {
        ready(Ok(template_message(request.features)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_features_still_gives_a_friendly_message() {
        let message = template_message(None);
        assert!(
            message
                .body
                .starts_with("Hi there! Thank you for choosing us.")
        );
        assert_eq!(message.recommended_service, "gutter_cleaning");
        assert_eq!(message.generator, "template");
    }
}
