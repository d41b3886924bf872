//! The deterministic template generator: the fallback whenever the model cannot answer,
//! and the generator of the embedded run. Same features, same message, always.

use std::future::{Future, ready};

use crate::catalogue::{REFERRAL_CREDIT_DOLLARS, recommend};
use crate::digits::push_decimal;
use crate::features::{CustomerFeatures, LifetimeValue};
use crate::gazetteer::is_known_place;
use crate::message_screen::screen;
use crate::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator};
use crate::prompt::push_sanitised;
use crate::shapes::us_state_code;

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
    let first_name = features
        .and_then(|f| f.customer_name.as_deref())
        .and_then(|name| screened(name, |clean| clean.split(' ').next().unwrap_or_default()));
    body.push_str(first_name.as_deref().unwrap_or("there"));
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
    if let Some(city) = features.and_then(real_city) {
        body.push_str(" in ");
        body.push_str(&city);
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
        fallback_reason: None,
    }
}

/// The part of customer text (`shown` picks it from the sanitised text) the message may
/// carry: only when it passes the screen a model's answer must pass. A name
/// `www.cheap-pest.com` or a city `call 555-123-4567` is left out, never sent.
fn screened(text: &str, shown: impl FnOnce(&str) -> &str) -> Option<String> {
    let mut clean = String::with_capacity(text.len());
    push_sanitised(&mut clean, text);
    let part = shown(&clean);
    (!part.is_empty() && screen(part).is_none()).then(|| part.to_owned())
}

/// The customer's city, when it passes the screen and the gazetteer knows it in their
/// state: "in Offer Fifty Percent Off" passes any screen of words, and is no place.
fn real_city(features: &CustomerFeatures) -> Option<String> {
    let property = &features.property_features;
    let state = property.state.as_deref().and_then(us_state_code)?;
    screened(property.city.as_deref()?, |clean| clean).filter(|city| is_known_place(city, state))
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
    use crate::event::{Webhook, parse_webhook_value};
    use crate::features::{MemoryLimits, fold_events};

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

    fn message_for(name: &str, city: &str) -> String {
        message_in(name, city, "TX")
    }

    fn message_in(name: &str, city: &str, state: &str) -> String {
        let body = serde_json::json!({
            "event_id": "evt_1", "event_type": "service.completed",
            "occurred_at": "2026-11-20T15:04:05Z",
            "customer": {"email": "a@example.com", "name": name,
                         "address": {"city": city, "state": state}},
        });
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&body) else {
            panic!("test event refused");
        };
        let fold = fold_events(None, &[&event], MemoryLimits::default());
        let features = fold
            .into_next()
            .unwrap_or_else(|| panic!("nothing applied"));
        template_message(Some(&features)).body
    }

    #[test]
    fn customer_text_that_fails_the_answer_screen_is_left_out() {
        for (name, city) in [
            ("www.cheap-pest.com", "call 555-123-4567 or visit evil.com"),
            ("bob@evil.example", "https://evil.example"),
            ("$100", "50% off at cheap.ru"),
        ] {
            let body = message_for(name, city);
            assert!(body.starts_with("Hi there! "), "{body}");
            assert!(body.contains("neighbour who could use"), "{body}");
            assert!(screen(&body).is_none(), "{body}");
        }
    }

    #[test]
    fn a_city_that_is_no_place_in_the_customers_state_is_left_out() {
        for (city, state) in [
            ("Offer Fifty Percent Off", "TX"),
            ("Austin", "NY"),
            ("Austin", "not a state"),
        ] {
            let body = message_in("Ann", city, state);
            assert!(body.contains("neighbour who could use"), "{body}");
        }
        assert!(message_in("Ann", "Austin", "TX").contains(" in Austin who"));
    }

    #[test]
    fn real_names_and_places_still_show() {
        for (name, city, state) in [
            ("José Álvarez", "St. Louis", "MO"),
            ("Zoë O'Brien", "Coeur d'Alene", "ID"),
            ("Mary-Kate", "Winston-Salem", "NC"),
            ("Ann", "Truth or Consequences", "NM"),
        ] {
            let body = message_in(name, city, state);
            let first = name.split(' ').next().unwrap_or_default();
            assert!(body.starts_with(&format!("Hi {first}! ")), "{body}");
            assert!(body.contains(&format!(" in {city} who")), "{body}");
        }
    }
}
