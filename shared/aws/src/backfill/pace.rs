//! What the tools that write history or band moves (backfill, recompute) share: a cap on
//! write units per second, and the one outcome each change they write gets.

use std::time::Duration;

use chrono::Utc;
use referral_domain::features::CustomerFeatures;
use referral_domain::orchestrator::message_id_for;
use referral_domain::orchestrator::policy::SuppressionReason;
use referral_domain::ports::{Decision, Holder, MessageStore, Recorded, Suppression};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::dynamo::put_write_units;

/// A shared cap on write units per second: each write books its units on one schedule.
#[derive(Debug)]
pub struct WritePace {
    per_unit: Duration,
    next: Mutex<Option<Instant>>,
}

impl WritePace {
    pub fn new(units_per_second: f64) -> Self {
        WritePace {
            per_unit: Duration::from_secs_f64(1.0 / units_per_second),
            next: Mutex::new(None),
        }
    }

    pub async fn take(&self, units: u64) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.map_or(now, |next| next.max(now));
            *next = Some(
                slot + self
                    .per_unit
                    .saturating_mul(u32::try_from(units).unwrap_or(1)),
            );
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The write units of putting `item`: one per started KB of its stored form.
pub fn write_units(item: &CustomerFeatures) -> u64 {
    put_write_units(item)
}

/// Records a change a tool wrote as its one outcome, suppressed for `reason`, so that no
/// message is made of it. `false` when it could not be recorded.
pub async fn record_suppressed<M: MessageStore>(
    messages: &M,
    written: &CustomerFeatures,
    reason: SuppressionReason,
    holder: &str,
) -> bool {
    let now = Utc::now();
    let suppression = Suppression {
        customer_email: written.customer_email.clone(),
        message_id: message_id_for(written),
        features_version: written.version,
        trigger_event_id: None,
        reason: reason.as_str().to_owned(),
        // Recomputed and backfilled changes come from no webhook: no trace.
        trace_id: None,
        decided_at: now,
    };
    let recorded = messages
        .record(Decision::Suppressed(suppression), &Holder::new(holder), now)
        .await;
    match recorded {
        Ok(Recorded::Recorded | Recorded::AlreadyDecided) => true,
        Ok(Recorded::ClaimHeldElsewhere) => false,
        Err(error) => {
            tracing::warn!(error = %referral_domain::error_chain(&error), reason = reason.as_str(), "could not record a suppression");
            false
        }
    }
}
