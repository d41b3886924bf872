//! Seeded webhook corpora for the enricher benchmark: valid `service.completed` bodies with
//! a long tail of events per customer, late and out-of-order arrivals, and redeliveries,
//! in the order a queue would hand them to the enricher. The same spec always gives the
//! same bytes, so runs on different days and machines measure the same work.

mod body;

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::Path;
use std::slice::Chunks;

use chrono::{DateTime, Duration, TimeZone, Utc};
use fastrand::Rng;
use thiserror::Error;

use body::Profile;

/// What to generate. Every choice is drawn from one `fastrand` generator seeded by `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusSpec {
    /// Seed of every random choice (default 1).
    pub seed: u64,
    /// Distinct valid events (default 1,500).
    pub distinct_events: usize,
    /// Extra deliveries that repeat an earlier body byte for byte (default 450).
    pub duplicates: usize,
    /// Customers; each gets at least one event (default 250).
    pub customers: usize,
    /// The `s` of the Zipf-like tail: customer of rank `k` gets a share `∝ 1/k^s` of the
    /// events beyond the first each (default 1.0; 0 spreads them evenly).
    pub zipf_exponent: f64,
    /// Earliest `occurred_at` (default 2025-01-01T00:00:00Z).
    pub start: DateTime<Utc>,
    /// Each customer's events spread over this span, increasing with jitter (default 365 days).
    pub span: Duration,
    /// An event is delivered between 0 and this long after it occurred, so events of one
    /// customer arrive out of order by at most this much (default 2 days).
    pub max_lateness: Duration,
    /// An ordinary redelivery comes up to this long after its original (default 15 min,
    /// an SQS visibility timeout or a sender's retry).
    pub redelivery_delay: Duration,
    /// Share of duplicates delivered much later: after `redelivery_delay`, up to
    /// `much_later_max` after the original (default 0.1).
    pub much_later_share: f64,
    /// Latest delay of a much-later duplicate (default 3 days).
    pub much_later_max: Duration,
    /// Messages per enricher invocation, as the SQS event-source mapping cuts them (default 10).
    pub batch_size: usize,
    /// The order the queue hands the deliveries over in (default: as they arrive).
    pub order: DeliveryOrder,
}

/// How a corpus's deliveries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryOrder {
    /// By `deliver_at`: live traffic, late and redelivered within the spec's bounds.
    #[default]
    Arrival,
    /// In random order: a history (or a replayed backlog) fed all at once, where any event
    /// may come years after a later one.
    Shuffled,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        CorpusSpec {
            seed: 1,
            distinct_events: 1_500,
            duplicates: 450,
            customers: 250,
            zipf_exponent: 1.0,
            start: Utc
                .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            span: Duration::days(365),
            max_lateness: Duration::days(2),
            redelivery_delay: Duration::minutes(15),
            much_later_share: 0.1,
            much_later_max: Duration::days(14),
            batch_size: 10,
            order: DeliveryOrder::Arrival,
        }
    }
}

/// A spec that cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CorpusError {
    #[error("`customers` must be between 1 and `distinct_events` ({distinct})")]
    Customers { distinct: usize },
    #[error("`batch_size` must be at least 1")]
    BatchSize,
    #[error("`{0}` is out of range (shares are 0..=1, exponents finite and >= 0, durations >= 0)")]
    OutOfRange(&'static str),
}

/// One message as the queue hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The webhook body, one line of JSON.
    pub body: String,
    pub event_id: String,
    /// The customer's normalised e-mail (the body may spell it in other case).
    pub customer: String,
    pub occurred_at: DateTime<Utc>,
    /// Simulated processing time: when the enricher sees this message.
    pub deliver_at: DateTime<Utc>,
    /// A re-send of an earlier delivery's exact body.
    pub is_duplicate: bool,
}

/// Deliveries in arrival order, with the spec that made them.
#[derive(Debug, Clone, PartialEq)]
pub struct Corpus {
    pub spec: CorpusSpec,
    pub deliveries: Vec<Delivery>,
}

/// Figures that describe a corpus, for reports next to bench results.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusStats {
    pub deliveries: usize,
    pub distinct: usize,
    pub duplicates: usize,
    /// Duplicates that came more than `redelivery_delay` after their original.
    pub much_later_duplicates: usize,
    pub customers: usize,
    pub top_customer_events: usize,
    /// First deliveries that arrive after a later-occurring event of the same customer.
    pub out_of_order: usize,
    pub batch_size: usize,
    pub batches: usize,
    pub body_bytes_min: usize,
    pub body_bytes_mean: f64,
    pub body_bytes_max: usize,
}

impl Corpus {
    /// The shape of the capacity issue's reference figures: 1,950 deliveries (1,500
    /// distinct valid events + 450 duplicates) from 250 customers, batches of 10, as live
    /// traffic: events up to 2 days late, a tenth of the duplicates up to 14 days later.
    pub fn issue_shape() -> Corpus {
        Corpus::generate(CorpusSpec::default()).expect("the issue-shape spec is valid")
    }

    /// The same shape as a year and a half of history delivered in random order: nearly
    /// every event arrives after later ones of its customer, most of them months later.
    pub fn shuffled_history() -> Corpus {
        Corpus::generate(CorpusSpec {
            seed: 3,
            span: Duration::days(547),
            order: DeliveryOrder::Shuffled,
            ..CorpusSpec::default()
        })
        .expect("the shuffled-history spec is valid")
    }

    /// One customer with 20,000 services over five years, arriving up to 7 days late, plus
    /// 30% duplicates (6,000), a fifth of them redelivered up to 14 days later: the item
    /// that grows the most and the most out-of-order stream.
    pub fn heavy_customer() -> Corpus {
        Corpus::generate(CorpusSpec {
            seed: 2,
            distinct_events: 20_000,
            duplicates: 6_000,
            customers: 1,
            span: Duration::days(5 * 365),
            max_lateness: Duration::days(7),
            much_later_share: 0.2,
            much_later_max: Duration::days(14),
            // Five years that end where the default corpus starts: all in the past, as a
            // real clock sees them (the enricher refuses events dated ahead of it).
            start: Utc
                .with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default(),
            ..CorpusSpec::default()
        })
        .expect("the heavy-customer spec is valid")
    }

    /// Generates the deliveries of `spec`, sorted by `deliver_at` unless shuffled.
    pub fn generate(spec: CorpusSpec) -> Result<Corpus, CorpusError> {
        validate(&spec)?;
        let mut rng = Rng::with_seed(spec.seed);
        let counts = events_per_customer(spec.distinct_events, spec.customers, spec.zipf_exponent);
        let span = spec.span.num_seconds();
        let mut ids = HashSet::with_capacity(spec.distinct_events);
        let mut deliveries = Vec::with_capacity(spec.distinct_events + spec.duplicates);
        for (index, &count) in counts.iter().enumerate() {
            let profile = Profile::new(&mut rng, index);
            for nth in 0..count {
                // One slot of the span per event, a random instant inside it: increasing
                // per customer, irregular like real visits.
                let (from, to) = (slot(span, nth, count), slot(span, nth + 1, count));
                let occurred_at =
                    spec.start + Duration::seconds(from + rng.i64(0..(to - from).max(1)));
                let event_id = loop {
                    let id = ulid_event_id(&mut rng, occurred_at);
                    if ids.insert(id.clone()) {
                        break id;
                    }
                };
                let late = Duration::seconds(rng.i64(0..=spec.max_lateness.num_seconds()));
                deliveries.push(Delivery {
                    body: profile.body(&mut rng, &event_id, nth, occurred_at),
                    event_id,
                    customer: profile.email.clone(),
                    occurred_at,
                    deliver_at: occurred_at + late,
                    is_duplicate: false,
                });
            }
        }
        let soon = spec.redelivery_delay.num_seconds().max(1);
        let much_later = spec.much_later_max.num_seconds().max(soon + 1);
        for _ in 0..spec.duplicates {
            let original = &deliveries[rng.usize(0..spec.distinct_events)];
            // At least a second later, so a duplicate always follows its original.
            let delay = if rng.f64() < spec.much_later_share {
                rng.i64(soon + 1..=much_later)
            } else {
                rng.i64(1..=soon)
            };
            let duplicate = Delivery {
                deliver_at: original.deliver_at + Duration::seconds(delay),
                is_duplicate: true,
                ..original.clone()
            };
            deliveries.push(duplicate);
        }
        // Stable: equal instants keep generation order, originals before their duplicates.
        deliveries.sort_by_key(|delivery| delivery.deliver_at);
        if spec.order == DeliveryOrder::Shuffled {
            rng.shuffle(&mut deliveries);
        }
        Ok(Corpus { spec, deliveries })
    }

    /// The deliveries in invocation-sized batches (`spec.batch_size`).
    pub fn batches(&self) -> Chunks<'_, Delivery> {
        batches(&self.deliveries, self.spec.batch_size)
    }

    /// One body per line, in delivery order: the input of the side-by-side bench kit's `lambda_runtime.py`
    /// and `referral run`.
    pub fn write_jsonl(&self, out: impl Write) -> io::Result<()> {
        write_jsonl(&self.deliveries, out)
    }

    /// [`Corpus::write_jsonl`] into a new file at `path`.
    pub fn save_jsonl(&self, path: &Path) -> io::Result<()> {
        let file = std::fs::File::create(path)?;
        self.write_jsonl(io::BufWriter::new(file))
    }

    pub fn stats(&self) -> CorpusStats {
        let mut per_customer: HashMap<&str, usize> = HashMap::new();
        let mut first_delivery: HashMap<&str, DateTime<Utc>> = HashMap::new();
        let mut latest_seen: HashMap<&str, DateTime<Utc>> = HashMap::new();
        let (mut much_later, mut out_of_order) = (0, 0);
        let redelivery = self.spec.redelivery_delay;
        for delivery in &self.deliveries {
            if delivery.is_duplicate {
                let first = first_delivery.get(delivery.event_id.as_str());
                if first.is_some_and(|&first| delivery.deliver_at - first > redelivery) {
                    much_later += 1;
                }
                continue;
            }
            *per_customer.entry(&delivery.customer).or_default() += 1;
            first_delivery.insert(&delivery.event_id, delivery.deliver_at);
            let latest = latest_seen
                .entry(&delivery.customer)
                .or_insert(delivery.occurred_at);
            if delivery.occurred_at < *latest {
                out_of_order += 1;
            }
            *latest = (*latest).max(delivery.occurred_at);
        }
        let sizes = self.deliveries.iter().map(|delivery| delivery.body.len());
        let total: usize = sizes.clone().sum();
        let distinct = first_delivery.len();
        CorpusStats {
            deliveries: self.deliveries.len(),
            distinct,
            duplicates: self.deliveries.len() - distinct,
            much_later_duplicates: much_later,
            customers: per_customer.len(),
            top_customer_events: per_customer.values().copied().max().unwrap_or(0),
            out_of_order,
            batch_size: self.spec.batch_size,
            batches: self.batches().len(),
            body_bytes_min: sizes.clone().min().unwrap_or(0),
            body_bytes_mean: total as f64 / self.deliveries.len().max(1) as f64,
            body_bytes_max: sizes.max().unwrap_or(0),
        }
    }
}

/// Cuts deliveries into batches of `size` (at least 1), the last one possibly shorter.
pub fn batches(deliveries: &[Delivery], size: usize) -> Chunks<'_, Delivery> {
    deliveries.chunks(size.max(1))
}

/// Writes each body on its own line.
pub fn write_jsonl(deliveries: &[Delivery], mut out: impl Write) -> io::Result<()> {
    for delivery in deliveries {
        out.write_all(delivery.body.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

fn validate(spec: &CorpusSpec) -> Result<(), CorpusError> {
    if spec.customers == 0 || spec.customers > spec.distinct_events {
        return Err(CorpusError::Customers {
            distinct: spec.distinct_events,
        });
    }
    if spec.batch_size == 0 {
        return Err(CorpusError::BatchSize);
    }
    if !(0.0..=1.0).contains(&spec.much_later_share) {
        return Err(CorpusError::OutOfRange("much_later_share"));
    }
    if !spec.zipf_exponent.is_finite() || spec.zipf_exponent < 0.0 {
        return Err(CorpusError::OutOfRange("zipf_exponent"));
    }
    let durations = [
        ("span", spec.span),
        ("max_lateness", spec.max_lateness),
        ("redelivery_delay", spec.redelivery_delay),
        ("much_later_max", spec.much_later_max),
    ];
    match durations.iter().find(|(_, d)| *d < Duration::zero()) {
        Some((name, _)) => Err(CorpusError::OutOfRange(name)),
        None => Ok(()),
    }
}

/// Each customer gets one event, and the rest are shared out by Zipf weights with the
/// largest-remainder method: exact totals, the same for every seed, a true long tail.
fn events_per_customer(distinct: usize, customers: usize, exponent: f64) -> Vec<usize> {
    let weights: Vec<f64> = (1..=customers)
        .map(|rank| (rank as f64).powf(-exponent))
        .collect();
    let total: f64 = weights.iter().sum();
    let spare = (distinct - customers) as f64;
    let quotas: Vec<f64> = weights.iter().map(|w| spare * w / total).collect();
    let mut counts: Vec<usize> = quotas.iter().map(|q| 1 + q.floor() as usize).collect();
    let left = distinct.saturating_sub(counts.iter().sum());
    let mut by_remainder: Vec<usize> = (0..customers).collect();
    by_remainder.sort_by(|&a, &b| {
        quotas[b]
            .fract()
            .total_cmp(&quotas[a].fract())
            .then(a.cmp(&b))
    });
    for &customer in by_remainder.iter().take(left) {
        counts[customer] += 1;
    }
    counts
}

/// Start of slot `nth` of `count` equal slots of `span` seconds.
fn slot(span: i64, nth: usize, count: usize) -> i64 {
    let at = i128::from(span) * nth as i128 / count.max(1) as i128;
    i64::try_from(at).unwrap_or(span)
}

/// `evt_` and a ULID (the fixtures' form): 48 bits of milliseconds, 80 random bits, in
/// Crockford base32.
fn ulid_event_id(rng: &mut Rng, at: DateTime<Utc>) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = u128::try_from(at.timestamp_millis()).unwrap_or(0) & ((1 << 48) - 1);
    let random = u128::from(rng.u64(..)) << 16 | u128::from(rng.u16(..));
    let value = millis << 80 | random;
    let mut id = String::with_capacity(30);
    id.push_str("evt_");
    for i in 0..26 {
        let shift = 125 - 5 * i;
        id.push(char::from(ALPHABET[((value >> shift) & 31) as usize]));
    }
    id
}

#[cfg(test)]
mod tests;
