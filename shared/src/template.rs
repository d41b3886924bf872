//! The deterministic template generator: the fallback whenever the model cannot answer,
//! and the generator of the embedded run. Same features, same message, always.

use std::future::{Future, ready};

use crate::digits::push_decimal;
use crate::features::{CustomerFeatures, LifetimeValue};
use crate::ports::{Generated, GenerationError, GenerationRequest, MessageGenerator};
use crate::prompt::push_sanitised;

pub const TEMPLATE_GENERATOR: &str = "template";

/// A service the company can recommend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogueService {
    pub id: &'static str,
    pub name: &'static str,
    /// Completes "could use ...".
    pub pitch: &'static str,
}

pub const CATALOGUE: &[CatalogueService] = &[
    CatalogueService {
        id: "termite_inspection",
        name: "Termite Inspection",
        pitch: "a thorough termite inspection",
    },
    CatalogueService {
        id: "pest_control",
        name: "Pest Prevention Plan",
        pitch: "a year-round pest prevention plan",
    },
    CatalogueService {
        id: "home_cleaning",
        name: "Deep Home Cleaning",
        pitch: "a deep home cleaning",
    },
    CatalogueService {
        id: "home_protection_plan",
        name: "Home Protection Plan",
        pitch: "our all-in-one home protection plan",
    },
    CatalogueService {
        id: "lawn_care",
        name: "Lawn Care",
        pitch: "seasonal lawn care",
    },
    CatalogueService {
        id: "hvac_tune_up",
        name: "HVAC Tune-Up",
        pitch: "a seasonal HVAC tune-up",
    },
    CatalogueService {
        id: "gutter_cleaning",
        name: "Gutter Cleaning",
        pitch: "a gutter cleaning",
    },
];

const LARGE_LOT_SQUARE_FEET: u64 = 2000;
const OLDER_HOME_BUILT_BEFORE: u16 = 1990;

fn service(id: &str) -> CatalogueService {
    CATALOGUE
        .iter()
        .copied()
        .find(|service| service.id == id)
        // The ids below are all in the catalogue (a unit test checks each rule's pick).
        .unwrap_or(CATALOGUE[CATALOGUE.len() - 1])
}

/// Picks the most relevant service; rules are checked in order, first match wins.
pub fn recommend(features: Option<&CustomerFeatures>) -> CatalogueService {
    let Some(features) = features else {
        return service("gutter_cleaning");
    };
    let property = &features.property_features;
    let pests = property.pest_issues.as_deref().unwrap_or_default();
    let kind = property.property_type.as_deref().unwrap_or_default();
    if pests
        .iter()
        .any(|pest| pest.to_lowercase().starts_with("termite"))
    {
        service("termite_inspection")
    } else if !pests.is_empty() {
        service("pest_control")
    } else if matches!(kind, "condo" | "apartment") {
        service("home_cleaning")
    } else if features.lifetime_value == LifetimeValue::High {
        service("home_protection_plan")
    } else if property
        .square_feet
        .is_some_and(|sq| sq >= LARGE_LOT_SQUARE_FEET)
    {
        service("lawn_care")
    } else if property
        .year_built
        .is_some_and(|year| year < OLDER_HOME_BUILT_BEFORE)
    {
        service("hvac_tune_up")
    } else {
        service("gutter_cleaning")
    }
}

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
    body.push_str("? Refer them and you will both get $25 off their first visit.");
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
    fn every_rule_picks_a_catalogue_service() {
        for id in [
            "termite_inspection",
            "pest_control",
            "home_cleaning",
            "home_protection_plan",
            "lawn_care",
            "hvac_tune_up",
            "gutter_cleaning",
        ] {
            assert_eq!(service(id).id, id);
        }
    }

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
