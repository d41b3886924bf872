//! What one synthetic customer looks like and how their webhooks are written: field order,
//! optional parts and value ranges follow `events/webhooks/valid`, so bodies stay in the
//! fixtures' 300–600 byte range and exercise the same parsing (offsets, e-mail case,
//! non-ASCII names, absent fields).

use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};
use fastrand::Rng;
use serde::Serialize;

/// Display name and its ASCII spelling for the e-mail address.
const FIRST_NAMES: &[(&str, &str)] = &[
    ("Jane", "jane"),
    ("Tom", "tom"),
    ("Carlos", "carlos"),
    ("Grace", "grace"),
    ("Noah", "noah"),
    ("Priya", "priya"),
    ("Daniel", "daniel"),
    ("Lena", "lena"),
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Aisha", "aisha"),
    ("Mateo", "mateo"),
    ("Hannah", "hannah"),
    ("Kenji", "kenji"),
    ("Olivia", "olivia"),
    ("Søren", "soren"),
];
const LAST_NAMES: &[(&str, &str)] = &[
    ("Doe", "doe"),
    ("Becker", "becker"),
    ("Mendez", "mendez"),
    ("Liu", "liu"),
    ("Kim", "kim"),
    ("Shah", "shah"),
    ("Ortiz", "ortiz"),
    ("Fischer", "fischer"),
    ("Nguyễn", "nguyen"),
    ("O'Brien", "obrien"),
    ("Müller", "muller"),
    ("Okafor", "okafor"),
    ("García", "garcia"),
    ("Johansson", "johansson"),
];
const DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
/// City, state, ZIP prefix and the local UTC offset in hours (standard time).
const PLACES: &[(&str, &str, &str, i32)] = &[
    ("Austin", "TX", "787", -6),
    ("Denver", "CO", "802", -7),
    ("Portland", "OR", "972", -8),
    ("Chicago", "IL", "606", -6),
    ("Atlanta", "GA", "303", -5),
    ("Phoenix", "AZ", "850", -7),
    ("Seattle", "WA", "981", -8),
    ("Boston", "MA", "021", -5),
    ("Miami", "FL", "331", -5),
    ("Nashville", "TN", "372", -6),
    ("San Diego", "CA", "921", -8),
    ("Columbus", "OH", "432", -5),
];
const STREETS: &[&str] = &[
    "Elm St",
    "Oak Ave",
    "Logan St",
    "NW 10th Ave",
    "Maple Dr",
    "Cedar Ln",
    "Pine Ct",
    "Lakeview Blvd",
    "Sunset Rd",
    "Highland Ave",
];
const SERVICE_TYPES: &[&str] = &[
    "pest_control",
    "termite_inspection",
    "rodent_exclusion",
    "mosquito_treatment",
    "lawn_care",
];
const PROPERTY_TYPES: &[&str] = &["single_family", "condo", "townhouse", "multi_family"];
const PESTS: &[&str] = &[
    "ants",
    "spiders",
    "rodents",
    "termites",
    "silverfish",
    "cockroaches",
    "wasps",
];

/// The stable facts of one customer; each event shows some of them.
#[derive(Debug, Clone)]
pub(super) struct Profile {
    /// Normalised (lower-case) e-mail: the table key and `Delivery::customer`.
    pub email: String,
    name: String,
    street: String,
    city: &'static str,
    state: &'static str,
    zip: String,
    offset: FixedOffset,
    property_type: &'static str,
    square_feet: u64,
    year_built: u16,
}

impl Profile {
    /// Customer number `index`; the index in the address keeps e-mails unique.
    pub fn new(rng: &mut Rng, index: usize) -> Profile {
        let (first, first_ascii) = pick(rng, FIRST_NAMES);
        let (last, last_ascii) = pick(rng, LAST_NAMES);
        let (city, state, zip_prefix, hours) = pick(rng, PLACES);
        let mut street = format!("{} {}", rng.u32(1..9999), pick(rng, STREETS));
        if rng.u8(0..5) == 0 {
            street.push_str(&format!(" Apt {}{}", rng.u8(1..20), rng.uppercase()));
        }
        Profile {
            email: format!("{first_ascii}.{last_ascii}{index}@{}", pick(rng, DOMAINS)),
            name: format!("{first} {last}"),
            street,
            city,
            state,
            zip: format!("{zip_prefix}{:02}", rng.u8(0..100)),
            // Whole hours within ±12: always a valid offset, UTC only as a formality.
            offset: FixedOffset::east_opt(hours * 3600).unwrap_or_else(|| Utc.fix()),
            property_type: pick(rng, PROPERTY_TYPES),
            square_feet: rng.u64(60..400) * 10,
            year_built: rng.u16(1950..2025),
        }
    }

    /// The body of this customer's `nth` service (0-based), with optional parts present
    /// about as often as senders include them.
    pub fn body(&self, rng: &mut Rng, event_id: &str, nth: usize, at: DateTime<Utc>) -> String {
        // Senders vary the e-mail's case now and then; the parser lower-cases it.
        let email = if rng.u8(0..10) == 0 {
            capitalised(&self.email)
        } else {
            self.email.clone()
        };
        let address = (rng.u8(0..100) < 85).then(|| Address {
            street: (rng.u8(0..10) != 0).then_some(self.street.as_str()),
            city: self.city,
            state: self.state,
            zip: &self.zip,
        });
        let score = (rng.u8(0..100) < 85).then(|| score(rng));
        let service = (rng.u8(0..100) < 95).then(|| Service {
            id: format!("svc_{:06}", rng.u32(0..1_000_000)),
            service_type: pick(rng, SERVICE_TYPES),
            satisfaction_score: score,
        });
        let property_info = (rng.u8(0..100) < 80).then(|| Property {
            property_type: self.property_type,
            square_feet: self.square_feet,
            year_built: self.year_built,
            pest_issues: (0..rng.usize(0..3)).map(|_| pick(rng, PESTS)).collect(),
        });
        let body = Body {
            event_id,
            event_type: referral_domain::event::SERVICE_COMPLETED,
            occurred_at: at
                .with_timezone(&self.offset)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            customer: Customer {
                email,
                name: (rng.u8(0..100) < 92).then_some(self.name.as_str()),
                address,
            },
            service,
            property_info,
            services_count: (rng.u8(0..10) == 0).then_some(nth as u64 + 1),
        };
        // Serialising plain structs of strings and numbers cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// 0.0..=5.0 in tenths, most customers content, a few not.
fn score(rng: &mut Rng) -> f64 {
    let tenths = match rng.u8(0..10) {
        0 => rng.u8(0..30),
        1..=3 => rng.u8(30..40),
        _ => rng.u8(40..=50),
    };
    f64::from(tenths) / 10.0
}

fn pick<T: Copy>(rng: &mut Rng, from: &[T]) -> T {
    from[rng.usize(0..from.len())]
}

fn capitalised(email: &str) -> String {
    let mut chars = email.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[derive(Serialize)]
struct Body<'a> {
    event_id: &'a str,
    event_type: &'static str,
    occurred_at: String,
    customer: Customer<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<Service>,
    #[serde(skip_serializing_if = "Option::is_none")]
    property_info: Option<Property>,
    #[serde(skip_serializing_if = "Option::is_none")]
    services_count: Option<u64>,
}

#[derive(Serialize)]
struct Customer<'a> {
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<Address<'a>>,
}

#[derive(Serialize)]
struct Address<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    street: Option<&'a str>,
    city: &'static str,
    state: &'static str,
    zip: &'a str,
}

#[derive(Serialize)]
struct Service {
    id: String,
    #[serde(rename = "type")]
    service_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    satisfaction_score: Option<f64>,
}

#[derive(Serialize)]
struct Property {
    #[serde(rename = "type")]
    property_type: &'static str,
    square_feet: u64,
    year_built: u16,
    pest_issues: Vec<&'static str>,
}
