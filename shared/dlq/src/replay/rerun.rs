//! Replaying the orchestrator's stream failure records: the orchestrator re-run over the
//! records they point at.

use super::*;

impl Replay<'_> {
    /// Re-runs the orchestrator for a stream failure record; deletes the record once every
    /// message of its batch exists.
    pub(super) async fn rerun(
        &mut self,
        message: &DlqMessage,
        failure: &StreamFailure,
        label: &str,
    ) -> Result<bool, DlqError> {
        if self.rerunner.is_none() {
            let rerunner = Rerunner::new(
                self.sdk,
                &self.args.tables.features_table,
                &self.args.tables.messages_table,
            )?;
            self.progress.line(
                false,
                &format!(
                    "stream failure records re-run the orchestrator into {} with the {}",
                    self.args.tables.messages_table,
                    rerunner.generator_name()
                ),
            );
            self.rerunner = Some(rerunner);
        }
        if !self.args.dry_run && !self.pacer.wait(&mut self.interrupt).await {
            return Ok(false);
        }
        let Some(rerunner) = &self.rerunner else {
            return Ok(false);
        };
        let where_ = failure.describe();
        let (result, counters) = match rerunner.rerun(failure, self.args.dry_run).await {
            Rerun::WouldRun { records } => {
                self.summary.would_rerun += 1;
                self.progress.line(
                    true,
                    &format!("would re-run {label}: {where_}, {records} record(s) retained"),
                );
                return Ok(false);
            }
            Rerun::WouldReconcile => {
                self.summary.would_rerun += 1;
                self.progress.line(
                    true,
                    &format!(
                        "would re-run {label}: {where_}: records no longer retained, every \
                         customer's current features would be checked"
                    ),
                );
                return Ok(false);
            }
            Rerun::Failed(reason) => {
                self.summary.failed += 1;
                self.progress.line(
                    true,
                    &format!(
                        "failed     {label}: {where_}: {reason}; left in {}",
                        self.dlq.name()
                    ),
                );
                return Ok(false);
            }
            Rerun::Done { records, counters } => (
                format!(
                    "{records} record(s), {} message(s) created, {} existed already",
                    counters.created, counters.already_created
                ),
                counters,
            ),
            Rerun::Reconciled { customers: 0, .. } => (
                "records no longer retained; covered by this run's check of every customer"
                    .to_owned(),
                StreamCounters::default(),
            ),
            Rerun::Reconciled {
                customers,
                counters,
                undecodable,
            } => (
                format!(
                    "records no longer retained; checked every customer's current features \
                     ({customers}): {} message(s) created, {} existed already{}",
                    counters.created,
                    counters.already_created,
                    match undecodable.as_slice() {
                        [] => String::new(),
                        keys => format!(
                            "; {} item(s) do not decode and were skipped (repair them, then \
                             replay again): {}",
                            keys.len(),
                            keys.join(", ")
                        ),
                    }
                ),
                counters,
            ),
        };
        self.summary.messages_created += counters.created;
        let done = format!("re-ran     {label}: {where_}: {result}");
        Ok(self
            .settle(
                message,
                |summary| &mut summary.stream_reruns,
                (done.clone(), done),
                |error| {
                    let error = referral_domain::error_chain(error);
                    format!(
                        "failed     {label}: re-ran {where_} ({result}) but could not delete the \
                         record ({error}); a rerun finds the messages exist"
                    )
                },
            )
            .await)
    }
}
