//! Loading a history of webhooks into the feature store: what `referral backfill` on one
//! machine and the backfill Lambda (one partition of customers a call, under a Step
//! Functions Distributed Map) share. The live path's enricher core does the work, so the
//! fold, the dedupe memory, the archive and the conditional writes are the live path's own;
//! the stores it writes through (`history.rs`) take the trigger off each version, record its
//! outcome as suppressed (`backfill`), pace and count the writes.

mod history;
mod pace;

pub use history::{HistoryStore, PacedArchive, WriteTally};
pub use pace::{WritePace, record_suppressed, write_units};

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use referral_domain::enricher::{Enricher, EnricherConfig, Outcome, QueuedWebhook};
use referral_domain::event::{Rejection, Webhook, parse_webhook};
use referral_domain::features::LifetimeValueRule;
use referral_domain::ports::{
    ErasureLog, EventArchive, FeatureStore, MessageRetention, MessageStore,
};
use referral_domain::redact::mask_email;
use sha2::{Digest, Sha256};

use crate::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};

/// Events and customers handed to the enricher at once (it writes customers concurrently):
/// the CLI's checkpoint follows each batch, so an interruption redoes at most one.
pub const BATCH_EVENTS: usize = 2_000;
pub const BATCH_CUSTOMERS: usize = 32;

/// The enricher a backfill runs: the live core over the history stores.
pub type HistoryEnricher<S, M, A> = Enricher<HistoryStore<S, M>, PacedArchive<A>>;
pub type DynamoHistoryEnricher =
    HistoryEnricher<DynamoFeatureStore, DynamoMessageStore, DynamoEventArchive>;

/// One customer's events in time order: (where each was read, its webhook body).
pub type CustomerHistory = (String, Vec<(String, String)>);

/// The tables a backfill writes.
pub use crate::dynamo::Tables as HistoryTables;

/// The backfill's enricher on DynamoDB, and the tally its writes are counted in.
pub fn dynamo_enricher(
    dynamodb: &aws_sdk_dynamodb::Client,
    tables: &HistoryTables,
    retention: MessageRetention,
    rule: LifetimeValueRule,
    pace: Option<Arc<WritePace>>,
) -> (DynamoHistoryEnricher, Arc<Mutex<WriteTally>>) {
    let tally = Arc::new(Mutex::new(WriteTally::default()));
    let enricher = Enricher::new(
        HistoryStore::new(
            DynamoFeatureStore::new(dynamodb.clone(), &tables.features),
            DynamoMessageStore::new(dynamodb.clone(), &tables.messages).with_retention(retention),
            pace.clone(),
            Arc::clone(&tally),
        ),
        PacedArchive::new(
            DynamoEventArchive::new(dynamodb.clone(), &tables.archive),
            pace,
            Arc::clone(&tally),
        ),
        EnricherConfig {
            lifetime_value: rule,
            ..EnricherConfig::default()
        },
    );
    (enricher, tally)
}

/// The partition (of `partitions`) a customer's events go to: stable across runs and
/// machines, so each customer is in exactly one partition.
pub fn partition_of(customer: &str, partitions: usize) -> usize {
    let digest = Sha256::digest(customer.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    usize::try_from(u64::from_le_bytes(head) % partitions.max(1) as u64).unwrap_or(0)
}

/// An event read for a backfill, as validation classed it.
#[derive(Debug)]
pub enum Classified {
    /// A valid `service.completed`: its customer's canonical key and when it occurred.
    Service {
        customer: String,
        at: i64,
    },
    /// A well-formed event of another type.
    Other,
    Refused(Rejection),
}

/// Validates a webhook body as ingest would and says whose it is.
pub fn classify(body: &str) -> Classified {
    match parse_webhook(body) {
        Ok(Webhook::ServiceCompleted(parsed)) => Classified::Service {
            at: parsed.occurred_at.timestamp(),
            customer: parsed.customer.email,
        },
        Ok(Webhook::Other { .. }) => Classified::Other,
        Err(rejection) => Classified::Refused(rejection),
    }
}

/// Valid events grouped by customer, each customer's in time order (as live traffic would
/// have brought them, so most land above the item's floor and need no archive read).
pub fn customer_histories(
    events: impl IntoIterator<Item = (String, i64, String, String)>,
) -> Vec<CustomerHistory> {
    let mut customers: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
    for (customer, at, source, body) in events {
        customers
            .entry(customer)
            .or_default()
            .push((at, source, body));
    }
    customers
        .into_iter()
        .map(|(customer, mut events)| {
            events.sort_by_key(|(at, _, _)| *at);
            let events = events
                .into_iter()
                .map(|(_, source, body)| (source, body))
                .collect();
            (customer, events)
        })
        .collect()
}

/// Customers cut into the batches handed to the enricher at once.
pub fn batches(histories: Vec<CustomerHistory>) -> Vec<Vec<CustomerHistory>> {
    let mut all = Vec::new();
    let mut batch: Vec<CustomerHistory> = Vec::new();
    let mut events = 0;
    for history in histories {
        events += history.1.len();
        batch.push(history);
        if events >= BATCH_EVENTS || batch.len() >= BATCH_CUSTOMERS {
            all.push(std::mem::take(&mut batch));
            events = 0;
        }
    }
    if !batch.is_empty() {
        all.push(batch);
    }
    all
}

/// An event the enricher refused, with where it was read: never its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub source: String,
    pub event_id: Option<String>,
    pub kind: &'static str,
    pub field: &'static str,
    pub error: String,
    /// The body, for a rejects file to be fixed and loaded again (customer data).
    pub body: String,
}

/// What one batch did.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    pub applied: u64,
    pub duplicates: u64,
    pub refused: Vec<Refused>,
    /// Customers all of whose events are in the table.
    pub finished: Vec<String>,
    /// Customers left unfinished (masked): load them again.
    pub unfinished: Vec<String>,
}

/// Hands one batch of customers to the enricher. `resumed`: the batch may have been loaded
/// before up to a write whose outcome was not recorded, so each customer's latest version
/// without a trigger gets its (idempotent) suppression.
pub async fn load_batch<S, M, A>(
    enricher: &HistoryEnricher<S, M, A>,
    batch: &[CustomerHistory],
    resumed: bool,
) -> BatchOutcome
where
    S: FeatureStore,
    M: MessageStore,
    A: EventArchive + ErasureLog,
{
    let store = enricher.store();
    let mut outcome = BatchOutcome::default();
    let mut unfinished = HashSet::new();
    for (customer, _) in batch {
        // What the table holds, so that events it has already cost this read and no write.
        match store.load(customer).await {
            Ok(Some(item)) => {
                if resumed && item.trigger_event_id.is_none() && item.version > 0 {
                    store.record(&item).await;
                }
                enricher.remember(item);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %referral_domain::error_chain(&error), "backfill could not read a customer's item");
                unfinished.insert(customer.as_str());
            }
        }
    }
    let queued: Vec<QueuedWebhook<'_>> = batch
        .iter()
        .filter(|(customer, _)| !unfinished.contains(customer.as_str()))
        .flat_map(|(_, events)| events)
        .map(|(source, body)| QueuedWebhook {
            message_id: source,
            body,
            trace: None,
        })
        .collect();
    let processed = enricher.process(&queued, Utc::now()).await;
    let bodies: BTreeMap<&str, &str> = queued.iter().map(|q| (q.message_id, q.body)).collect();
    for message in processed.messages {
        match &message.outcome {
            Outcome::Applied => outcome.applied += 1,
            Outcome::Duplicate { conflicting: false } => outcome.duplicates += 1,
            Outcome::Failed(failure) => {
                tracing::warn!(source = message.message_id, error = %failure, "backfill left an event unapplied");
                if let Some(customer) = &message.customer_email {
                    unfinished.insert(
                        batch
                            .iter()
                            .find(|(key, _)| key == customer)
                            .map_or("", |(key, _)| key.as_str()),
                    );
                }
            }
            refused => {
                if let Some(refusal) = refused.refusal() {
                    let body = bodies.get(message.message_id.as_str()).copied();
                    outcome.refused.push(Refused {
                        source: message.message_id.clone(),
                        event_id: message.event_id.clone(),
                        kind: refusal.kind,
                        field: refusal.field,
                        error: refusal.message,
                        body: body.unwrap_or_default().to_owned(),
                    });
                }
            }
        }
    }
    for (customer, _) in batch {
        if unfinished.contains(customer.as_str()) {
            outcome.unfinished.push(mask_email(customer));
        } else {
            outcome.finished.push(customer.clone());
        }
    }
    outcome
}
