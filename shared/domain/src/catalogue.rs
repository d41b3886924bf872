//! What the company can recommend, and the rule that picks one service for a customer. The
//! prompt lists the catalogue for the model, the template writes its pick, and the Bedrock
//! adapter refuses an answer that names anything else.

use crate::features::{CustomerFeatures, LifetimeValue};

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

/// The referral offer, in whole dollars: the prompt states it, the template writes it, and
/// an answer naming any other amount is refused.
pub const REFERRAL_CREDIT_DOLLARS: u64 = 25;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Webhook, parse_webhook_value};
    use crate::features::{MemoryLimits, fold_events};
    use serde_json::{Value, json};

    fn features(property: Value, score: f64, services: u64) -> CustomerFeatures {
        let body = json!({
            "event_id": "evt_1", "event_type": "service.completed",
            "occurred_at": "2026-11-20T15:04:05Z",
            "customer": {"email": "a@example.com"},
            "service": {"satisfaction_score": score},
            "property_info": property,
            "services_count": services
        });
        let Ok(Webhook::ServiceCompleted(event)) = parse_webhook_value(&body) else {
            panic!("test event refused");
        };
        let fold = fold_events(None, &[&event], MemoryLimits::default());
        fold.into_next()
            .unwrap_or_else(|| panic!("nothing applied"))
    }

    /// One customer per rule, in rule order; each must get a different catalogue service,
    /// so a rule that names an id missing from the catalogue (and silently falls through
    /// to the default) fails here.
    #[test]
    fn every_rule_picks_its_own_catalogue_service() {
        let picks: Vec<&str> = [
            None,
            Some(features(json!({"pest_issues": ["termites"]}), 3.0, 1)),
            Some(features(json!({"pest_issues": ["ants"]}), 3.0, 1)),
            Some(features(json!({"type": "condo"}), 3.0, 1)),
            Some(features(json!({}), 4.5, 8)),
            Some(features(json!({"square_feet": 2500}), 3.0, 1)),
            Some(features(json!({"year_built": 1970}), 3.0, 1)),
        ]
        .iter()
        .map(|features| recommend(features.as_ref()).id)
        .collect();
        let mut distinct = picks.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            picks.len(),
            "two rules pick the same service: {picks:?}"
        );
        for id in &picks {
            assert!(
                CATALOGUE.iter().any(|service| service.id == *id),
                "{id} is not in the catalogue"
            );
        }
        assert_eq!(
            picks.len(),
            CATALOGUE.len(),
            "a catalogue service no rule picks"
        );
    }
}
