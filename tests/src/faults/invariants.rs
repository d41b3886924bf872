//! What must hold after any run, whatever was injected, checked on a snapshot of the world
//! ([`World`]): what was sent, what the tables, queues and Bedrock saw.
//!
//! 1. **features**: every customer's item equals the reference fold of the distinct valid
//!    events applied to it (`expected_features`, compared by `comparable`), and no item
//!    exists without events;
//! 2. **nothing lost**: every event sent is applied (its customer's item remembers it, or
//!    the archive bucket the item's layout names holds it) or in the webhook dead-letter
//!    queue with a reason (`error_kind`, or a redrive after
//!    `maxReceiveCount` receives); the webhook queue is empty;
//! 3. **one decision per change**: every change (customer, version 1..=current) has exactly
//!    one decision (message or suppression) under its key `v<version>`, unless the stream
//!    mapping gave the change up to its on-failure destination; no decision for a change
//!    that does not exist;
//! 4. **Bedrock at most once per change**: at most one call per change that Bedrock did not
//!    refuse for throttling (a throttled call is refused work; under the retry policy it is
//!    tried again); a message Bedrock wrote had exactly one answered call, a template
//!    message's `fallback_reason` is the kind of its change's last call, and the fallback
//!    counters add up to the messages;
//! 5. **no stuck claim**: no row of the message table is still a claim.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use referral_domain::event::ServiceEvent;
use referral_domain::fallback::FallbackCounters;
use referral_domain::features::{ArchivedEvent, CustomerFeatures, IdHash, MemoryLimits};

use crate::{comparable, expected_features};

/// One message put on the webhook queue.
#[derive(Debug, Clone)]
pub struct Sent {
    pub body: String,
    pub event_id: Option<String>,
    /// The event, when the body is a valid service event.
    pub event: Option<ServiceEvent>,
}

/// One message of the webhook dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub body: String,
    pub event_id: Option<String>,
    /// `error_kind`, or `redriven` for a message the queue moved after its receive count.
    pub reason: Option<String>,
}

/// One decided change in the message table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    pub customer: String,
    pub message_id: String,
    pub version: u64,
    /// The generator of a message; `None` for a suppression.
    pub generator: Option<String>,
    pub fallback_reason: Option<String>,
}

/// Every Bedrock call, by change, and the fallback counters the function emitted.
#[derive(Debug, Clone, Default)]
pub struct BedrockLog {
    /// The outcome of each call of a change, in order: `ok`, or the error kind.
    pub calls: BTreeMap<(String, u64), Vec<&'static str>>,
    pub counters: FallbackCounters,
}

/// A snapshot of everything the invariants look at.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub sent: Vec<Sent>,
    pub memory_limits: MemoryLimits,
    pub features: BTreeMap<String, CustomerFeatures>,
    /// The event archive, by customer and bucket.
    pub archive: BTreeMap<String, BTreeMap<u32, Vec<ArchivedEvent>>>,
    pub decisions: Vec<DecisionRow>,
    /// Keys of message-table rows that are still claims.
    pub claims: Vec<String>,
    pub dead_letters: Vec<DeadLetter>,
    /// Messages left on the webhook queue, visible or in flight.
    pub queue_left: u64,
    /// Changes the stream mapping gave up on (sent to its on-failure destination).
    pub given_up: BTreeSet<(String, u64)>,
    /// `None` where no Bedrock was involved (the template generator alone).
    pub bedrock: Option<BedrockLog>,
}

/// The outcome of one invariant.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    /// What was checked, in figures.
    pub summary: String,
    pub violations: Vec<String>,
}

/// Every invariant's outcome.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn holds(&self) -> bool {
        self.checks.iter().all(|check| check.violations.is_empty())
    }

    /// The violations of the invariant `name`.
    pub fn violations(&self, name: &str) -> &[String] {
        self.checks
            .iter()
            .find(|check| check.name == name)
            .map_or(&[], |check| check.violations.as_slice())
    }

    /// Fails the test, listing what is broken, unless every invariant holds.
    pub fn assert_holds(&self) {
        assert!(self.holds(), "invariants broken:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = if check.violations.is_empty() {
                "holds "
            } else {
                "BROKEN"
            };
            writeln!(f, "  [{mark}] {}: {}", check.name, check.summary)?;
            for violation in check.violations.iter().take(10) {
                writeln!(f, "           - {violation}")?;
            }
            if check.violations.len() > 10 {
                writeln!(f, "           - ... {} more", check.violations.len() - 10)?;
            }
        }
        Ok(())
    }
}

/// Checks every invariant on `world`.
pub fn check(world: &World) -> Report {
    let Report { mut checks } = check_enrichment(world);
    checks.push(one_decision_per_change(world));
    if let Some(log) = &world.bedrock {
        checks.push(bedrock_once(world, log));
    }
    checks.push(Check {
        name: "no stuck claim",
        summary: format!(
            "{} rows of the message table, {} still claims",
            world.decisions.len() + world.claims.len(),
            world.claims.len()
        ),
        violations: world
            .claims
            .iter()
            .map(|key| format!("claim {key} was never decided"))
            .collect(),
    });
    Report { checks }
}

/// The enricher's invariants alone, for scenarios that run no orchestrator: features,
/// memory and archive, nothing lost.
pub fn check_enrichment(world: &World) -> Report {
    let dead: BTreeMap<&str, &DeadLetter> = world
        .dead_letters
        .iter()
        .filter_map(|letter| Some((letter.event_id.as_deref()?, letter)))
        .collect();
    Report {
        checks: vec![features(world, &dead), nothing_lost(world, &dead)],
    }
}

/// Distinct valid events by id (the first body sent under each id).
fn distinct_events(world: &World) -> BTreeMap<&str, &ServiceEvent> {
    let mut events = BTreeMap::new();
    for sent in &world.sent {
        if let Some(event) = &sent.event {
            events.entry(&event.event_id[..]).or_insert(event);
        }
    }
    events
}

/// Whether an event's customer knows it applied: in the item, or in the very bucket its
/// layout sends the id to (an entry in another bucket would not be found by a reader).
fn remembered(world: &World, event: &ServiceEvent) -> bool {
    let Some(item) = world.features.get(&event.customer.email) else {
        return false;
    };
    if item.memory.remembers(&event.event_id) {
        return true;
    }
    let id = IdHash::of(&event.event_id);
    world
        .archive
        .get(&event.customer.email)
        .and_then(|buckets| buckets.get(&item.memory.layout().bucket_of(id)))
        .is_some_and(|bucket| bucket.iter().any(|archived| archived.id == id))
}

fn features(world: &World, dead: &BTreeMap<&str, &DeadLetter>) -> Check {
    let applied: Vec<ServiceEvent> = distinct_events(world)
        .into_values()
        .filter(|event| !dead.contains_key(&event.event_id[..]) || remembered(world, event))
        .cloned()
        .collect();
    let expected = expected_features(&applied, world.memory_limits);
    let customers: BTreeSet<&String> = expected.keys().chain(world.features.keys()).collect();
    let mut violations = Vec::new();
    for customer in &customers {
        match (world.features.get(*customer), expected.get(*customer)) {
            (Some(stored), Some(expected)) => {
                if comparable(stored.clone()) != comparable(expected.clone()) {
                    violations.push(format!(
                        "{customer}: the item differs from the fold of its events (events \
                         applied {} vs {}, services {} vs {}, satisfaction {} vs {})",
                        stored.events_applied,
                        expected.events_applied,
                        stored.service_count,
                        expected.service_count,
                        stored.satisfaction_avg,
                        expected.satisfaction_avg
                    ));
                }
            }
            (Some(_), None) => violations.push(format!("{customer}: an item but no event")),
            (None, Some(expected)) => violations.push(format!(
                "{customer}: no item, {} events applied",
                expected.events_applied
            )),
            (None, None) => {}
        }
    }
    Check {
        name: "features",
        summary: format!(
            "{} customers' items equal the reference fold of their {} applied events",
            expected.len(),
            applied.len()
        ),
        violations,
    }
}

fn nothing_lost(world: &World, dead: &BTreeMap<&str, &DeadLetter>) -> Check {
    let mut violations = Vec::new();
    let (mut applied, mut dead_lettered, mut lost) = (0, 0, 0);
    for event in distinct_events(world).into_values() {
        if remembered(world, event) {
            applied += 1;
        } else if dead.contains_key(&event.event_id[..]) {
            dead_lettered += 1;
        } else {
            lost += 1;
            violations.push(format!(
                "event {} of {} is neither applied nor dead-lettered",
                event.event_id, event.customer.email
            ));
        }
    }
    let mut invalid = BTreeSet::new();
    for sent in world.sent.iter().filter(|sent| sent.event.is_none()) {
        if !invalid.insert(sent.body.as_str()) {
            continue;
        }
        let found = world.dead_letters.iter().any(|letter| {
            letter.body == sent.body
                || (sent.event_id.is_some() && letter.event_id == sent.event_id)
        });
        if !found {
            violations.push(format!(
                "refused message {:?} is not in the dead-letter queue",
                sent.event_id
            ));
        }
    }
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for letter in &world.dead_letters {
        match &letter.reason {
            Some(reason) => *reasons.entry(reason).or_default() += 1,
            None => violations.push(format!(
                "dead letter {:?} carries no reason",
                letter.event_id
            )),
        }
    }
    if world.queue_left > 0 {
        violations.push(format!(
            "{} messages are still on the webhook queue",
            world.queue_left
        ));
    }
    Check {
        name: "nothing lost",
        summary: format!(
            "{} distinct events: {applied} applied, {dead_lettered} dead-lettered; {} refused \
             messages; dead letters by reason {reasons:?}; {} left on the queue",
            applied + dead_lettered + lost,
            invalid.len(),
            world.queue_left
        ),
        violations,
    }
}

fn one_decision_per_change(world: &World) -> Check {
    let mut violations = Vec::new();
    let mut decided: BTreeMap<(&str, u64), u32> = BTreeMap::new();
    let mut by_writer: BTreeMap<String, u64> = BTreeMap::new();
    for row in &world.decisions {
        *decided.entry((&row.customer, row.version)).or_default() += 1;
        let writer = match (&row.generator, &row.fallback_reason) {
            (None, _) => "suppressed".to_owned(),
            (Some(generator), None) => generator.clone(),
            (Some(generator), Some(reason)) => format!("{generator} ({reason})"),
        };
        *by_writer.entry(writer).or_default() += 1;
        if row.message_id != format!("v{:012}", row.version) {
            violations.push(format!(
                "{}: decision {} is not keyed by its version {}",
                row.customer, row.message_id, row.version
            ));
        }
        let current = world.features.get(&row.customer).map(|item| item.version);
        if current.is_none_or(|current| row.version > current || row.version == 0) {
            violations.push(format!(
                "{}: a decision for v{}, a change that does not exist",
                row.customer, row.version
            ));
        }
    }
    let mut changes = 0;
    for (customer, item) in &world.features {
        for version in 1..=item.version {
            changes += 1;
            let count = decided.get(&(customer.as_str(), version)).copied();
            let given_up = world.given_up.contains(&(customer.clone(), version));
            match count {
                Some(1) => {}
                None if given_up => {}
                None => violations.push(format!("{customer} v{version}: no decision")),
                Some(n) => violations.push(format!("{customer} v{version}: {n} decisions")),
            }
        }
    }
    Check {
        name: "one decision per change",
        summary: format!(
            "{changes} changes, {} decisions by writer {by_writer:?}, {} given up to the \
             stream's failure destination",
            world.decisions.len(),
            world.given_up.len()
        ),
        violations,
    }
}

fn bedrock_once(world: &World, log: &BedrockLog) -> Check {
    let mut violations = Vec::new();
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    for ((customer, version), calls) in &log.calls {
        for call in calls {
            *outcomes.entry(call).or_default() += 1;
        }
        let answered = calls.iter().filter(|call| **call != "throttled").count();
        if answered > 1 {
            violations.push(format!(
                "{customer} v{version}: Bedrock answered {answered} times ({calls:?})"
            ));
        }
    }
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    let mut primary = 0;
    for row in &world.decisions {
        let calls = log
            .calls
            .get(&(row.customer.clone(), row.version))
            .map_or(&[][..], Vec::as_slice);
        match (row.generator.as_deref(), row.fallback_reason.as_deref()) {
            (Some("bedrock"), _) => {
                primary += 1;
                if calls.iter().filter(|call| **call == "ok").count() != 1 {
                    violations.push(format!(
                        "{} v{}: a Bedrock message without exactly one answer ({calls:?})",
                        row.customer, row.version
                    ));
                }
            }
            (Some(_), Some(reason)) => {
                *reasons.entry(reason).or_default() += 1;
                if calls.last().copied() != Some(reason) {
                    violations.push(format!(
                        "{} v{}: fallback_reason {reason}, but Bedrock's last answer was {:?}",
                        row.customer,
                        row.version,
                        calls.last()
                    ));
                }
            }
            _ => {}
        }
    }
    let counters = &log.counters;
    let counted = [
        ("throttled", counters.fallback_throttled),
        ("timeout", counters.fallback_timeout),
        ("access_denied", counters.fallback_access_denied),
        ("rejected", counters.fallback_rejected),
        ("unusable_answer", counters.fallback_unusable),
        ("unavailable", counters.fallback_unavailable),
    ];
    for (reason, count) in counted {
        let messages = reasons.get(reason).copied().unwrap_or(0);
        if messages != count {
            violations.push(format!(
                "fallback_{reason} counted {count}, messages say {messages}"
            ));
        }
    }
    if counters.primary_ok != primary {
        violations.push(format!(
            "primary_ok counted {}, Bedrock wrote {primary} messages",
            counters.primary_ok
        ));
    }
    let throttled = outcomes.get("throttled").copied().unwrap_or(0);
    if counters.handed_back_throttled + counters.fallback_throttled != throttled {
        violations.push(format!(
            "{throttled} throttled calls, but {} handed back and {} fallen back",
            counters.handed_back_throttled, counters.fallback_throttled
        ));
    }
    Check {
        name: "Bedrock at most once per change",
        summary: format!(
            "{} calls for {} changes, by outcome {outcomes:?}; {} handed back",
            outcomes.values().sum::<u64>(),
            log.calls.len(),
            counters.handed_back_throttled
        ),
        violations,
    }
}

#[cfg(test)]
#[path = "invariants_tests.rs"]
mod tests;
