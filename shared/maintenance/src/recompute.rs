//! `referral features recompute`: moves stored items to the bands a lifetime-value rule
//! gives them.
//!
//! Recompute scans the table in parallel segments and re-derives each item's band from its
//! stored aggregates (`service_count`, the score sum and count): nothing else decides a
//! band, so no history is replayed. A move is written like any change: the next version,
//! conditioned on the version read, so a concurrent enricher write is never lost (the item
//! is re-derived from what it wrote). Each written change is recorded in the messages table
//! as suppressed with reason `recompute`, its one outcome; the new version carries no
//! trigger (it applied no service), so the orchestrator makes no message of it either.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::SdkConfig;
use referral_aws::backfill::{WritePace, record_suppressed, write_units};
use referral_aws::dynamo::{DynamoFeatureStore, DynamoMessageStore};
use referral_domain::features::{CustomerFeatures, LifetimeValue, LifetimeValueRule, RuleError};
use referral_domain::orchestrator::policy::{SuppressionReason, format_score};
use referral_domain::ports::{
    AdapterError, FeatureStore, FeatureWrite, MessageRetention, WriteOutcome,
};
use referral_domain::redact::mask_email;
use serde::Serialize;
use tokio::task::JoinSet;

/// What `referral features recompute` was asked.
#[derive(Debug, Clone)]
pub struct RecomputeOptions {
    /// The rule whose bands the items move to.
    pub rule: LifetimeValueRule,
    /// Change nothing: print how many customers would move from which band to which.
    pub plan: bool,
    /// One JSON object instead of text.
    pub json: bool,
    pub features_table: String,
    pub messages_table: String,
    pub message_retention: MessageRetention,
    /// Scan segments read (and written) at once.
    pub segments: u16,
    /// At most this many write units a second. Unset: no cap.
    pub max_write_units: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecomputeError {
    #[error(transparent)]
    Rule(#[from] RuleError),
    #[error(transparent)]
    Store(#[from] AdapterError),
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a scan segment stopped: {0}")]
    Segment(#[from] tokio::task::JoinError),
}

/// Conditional writes tried per customer before it is reported as failed (each refusal
/// means a concurrent write, which is re-derived from).
const MAX_WRITE_ATTEMPTS: u32 = 8;
/// Who records the recompute's suppressions in the messages table.
const HOLDER: &str = "recompute";

/// What a recompute did, or (`--plan`) would do.
#[derive(Debug, Default, Serialize)]
struct Report {
    plan: bool,
    rule: RuleView,
    /// Items read.
    scanned: u64,
    /// Customers moved (or, planned, to move), by band pair.
    moves: Vec<Move>,
    /// Moves written (0 with `--plan`).
    written: u64,
    /// Writes refused because the item changed meanwhile; re-derived from the new version.
    conflicts: u64,
    /// Moves written whose `recompute` suppression could not be recorded (the change still
    /// gets no message: it has no trigger).
    unrecorded: u64,
    /// Customers left as they were: conflicts past the attempts, or a store error.
    failed: Vec<String>,
    /// Items that do not decode, by masked key.
    undecodable: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct RuleView {
    high_min_services: u64,
    high_min_satisfaction: String,
    medium_min_services: u64,
    medium_min_satisfaction: String,
}

impl From<&LifetimeValueRule> for RuleView {
    fn from(rule: &LifetimeValueRule) -> Self {
        // The rule is validated: its scores are at most 5 million micros.
        let score = |micros: u64| format_score(u32::try_from(micros).unwrap_or(u32::MAX));
        RuleView {
            high_min_services: rule.high_min_services,
            high_min_satisfaction: score(rule.high_min_satisfaction_micros),
            medium_min_services: rule.medium_min_services,
            medium_min_satisfaction: score(rule.medium_min_satisfaction_micros),
        }
    }
}

#[derive(Debug, Serialize)]
struct Move {
    from: LifetimeValue,
    to: LifetimeValue,
    customers: u64,
}

/// One segment's tally, merged into the report.
#[derive(Debug, Default)]
struct Tally {
    scanned: u64,
    moves: BTreeMap<(&'static str, &'static str), (LifetimeValue, LifetimeValue, u64)>,
    written: u64,
    conflicts: u64,
    unrecorded: u64,
    failed: Vec<String>,
    undecodable: Vec<String>,
}

impl Tally {
    fn moved(&mut self, from: LifetimeValue, to: LifetimeValue) {
        self.moves
            .entry((from.as_str(), to.as_str()))
            .or_insert((from, to, 0))
            .2 += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.scanned += other.scanned;
        for (key, (from, to, n)) in other.moves {
            self.moves.entry(key).or_insert((from, to, 0)).2 += n;
        }
        self.written += other.written;
        self.conflicts += other.conflicts;
        self.unrecorded += other.unrecorded;
        self.failed.extend(other.failed);
        self.undecodable.extend(other.undecodable);
    }
}

#[derive(Debug)]
struct Worker {
    features: DynamoFeatureStore,
    messages: DynamoMessageStore,
    rule: LifetimeValueRule,
    plan: bool,
    pace: Option<WritePace>,
}

pub async fn recompute(
    args: &RecomputeOptions,
    sdk: &SdkConfig,
) -> Result<ExitCode, RecomputeError> {
    let rule = args.rule;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let worker = Arc::new(Worker {
        features: DynamoFeatureStore::new(dynamodb.clone(), &args.features_table),
        messages: DynamoMessageStore::new(dynamodb, &args.messages_table)
            .with_retention(args.message_retention),
        rule,
        plan: args.plan,
        pace: args.max_write_units.map(WritePace::new),
    });
    let total = i32::from(args.segments);
    let mut segments = JoinSet::new();
    for segment in 0..total {
        let worker = Arc::clone(&worker);
        segments.spawn(async move { worker.segment(segment, total).await });
    }
    let mut tally = Tally::default();
    let mut error = None;
    while let Some(done) = segments.join_next().await {
        match done? {
            Ok(segment) => tally.merge(segment),
            // The other segments finish what they started: their writes are complete changes.
            Err(failed) => error = Some(failed),
        }
    }
    if let Some(error) = error {
        return Err(error.into());
    }
    let report = Report {
        plan: args.plan,
        rule: RuleView::from(&rule),
        scanned: tally.scanned,
        moves: tally
            .moves
            .into_values()
            .map(|(from, to, customers)| Move {
                from,
                to,
                customers,
            })
            .collect(),
        written: tally.written,
        conflicts: tally.conflicts,
        unrecorded: tally.unrecorded,
        failed: tally.failed,
        undecodable: tally.undecodable,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", text(&report));
    }
    Ok(
        match report.failed.is_empty() && report.undecodable.is_empty() {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
    )
}

fn text(report: &Report) -> String {
    let rule = &report.rule;
    let mut out = format!(
        "rule: high >= {} services and >= {} satisfaction; medium >= {} services or >= {}\n",
        rule.high_min_services,
        rule.high_min_satisfaction,
        rule.medium_min_services,
        rule.medium_min_satisfaction
    );
    let verb = if report.plan { "would move" } else { "moved" };
    for moved in &report.moves {
        out.push_str(&format!(
            "{} -> {}: {} customers {verb}\n",
            moved.from.as_str(),
            moved.to.as_str(),
            moved.customers
        ));
    }
    let moving: u64 = report.moves.iter().map(|moved| moved.customers).sum();
    out.push_str(&format!(
        "{} items scanned, {moving} {verb}",
        report.scanned
    ));
    if !report.plan {
        out.push_str(&format!(
            ", {} written ({} conflicts re-derived, {} suppressions not recorded)",
            report.written, report.conflicts, report.unrecorded
        ));
    }
    out.push('\n');
    for email in &report.failed {
        out.push_str(&format!("failed: {email} (left as it was; run again)\n"));
    }
    for key in &report.undecodable {
        out.push_str(&format!(
            "undecodable: {key} (see `referral features get`)\n"
        ));
    }
    out
}

impl Worker {
    async fn segment(&self, segment: i32, total: i32) -> Result<Tally, AdapterError> {
        let mut tally = Tally::default();
        let mut start = None;
        loop {
            let page = self
                .features
                .scan_segment_page(start, Some((segment, total)))
                .await?;
            for (key, _) in page.undecodable {
                tally.undecodable.push(mask_email(&key));
            }
            for item in page.items {
                tally.scanned += 1;
                self.visit(item, &mut tally).await;
            }
            start = match page.next {
                Some(next) => Some(next),
                None => return Ok(tally),
            };
        }
    }

    /// Moves one item to its band, re-deriving from whatever a concurrent writer left.
    async fn visit(&self, item: CustomerFeatures, tally: &mut Tally) {
        let mut current = item;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(next) = current.rederived(&self.rule) else {
                return;
            };
            let from = current.lifetime_value;
            if self.plan {
                tally.moved(from, next.lifetime_value);
                return;
            }
            if let Some(pace) = &self.pace {
                pace.take(write_units(&next)).await;
            }
            let next = Arc::new(next);
            let write = FeatureWrite {
                expected_version: Some(current.version),
                item: Arc::clone(&next),
                applied_ids: Vec::new(),
            };
            let seen = match self.features.save(write).await {
                Ok(WriteOutcome::Applied) => {
                    tally.written += 1;
                    tally.moved(from, next.lifetime_value);
                    if !self.record(&next).await {
                        tally.unrecorded += 1;
                    }
                    return;
                }
                Ok(WriteOutcome::Conflict { current }) => current,
                // Not for a write that applies no event; treated as the conflict it is.
                Ok(WriteOutcome::Duplicate { current }) => Some(current),
                Err(error) => {
                    tracing::warn!(error = %referral_domain::error_chain(&error), "recompute could not write an item");
                    tally.failed.push(mask_email(&current.customer_email));
                    return;
                }
            };
            tally.conflicts += 1;
            current = match seen {
                Some(item) => item,
                None => match self.features.load(&current.customer_email).await {
                    Ok(Some(item)) => item,
                    // Deleted meanwhile (`customers forget`): nothing to move.
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(error = %referral_domain::error_chain(&error), "recompute could not read an item");
                        tally.failed.push(mask_email(&current.customer_email));
                        return;
                    }
                },
            };
        }
        tally.failed.push(mask_email(&current.customer_email));
    }

    /// Records the written change's one outcome: suppressed, `recompute`. `false` when it
    /// could not be recorded.
    async fn record(&self, written: &CustomerFeatures) -> bool {
        record_suppressed(
            &self.messages,
            written,
            SuppressionReason::Recompute,
            HOLDER,
        )
        .await
    }
}
