//! Replaying queue messages: receive ahead, filter, send with the replay's attributes, and
//! delete from the DLQ only once the send succeeded.

use super::*;

impl Replay<'_> {
    pub(super) async fn process(&mut self, scan: &mut Scan<'_>) -> Result<(), DlqError> {
        let max = self.args.max.unwrap_or(u64::MAX);
        // Receive no more than the run can handle well within the lease, so that held
        // messages do not reappear (under a new receipt, which the delete would need) while
        // they wait for their turn. Two batches are held at once (one received ahead), so
        // each may take a third of the lease.
        let per_lease = self.args.rate.map_or(BATCH_LIMIT, |rate| {
            let fit = rate * f64::from(self.args.lease) / 3.0;
            if fit >= BATCH_LIMIT as f64 {
                BATCH_LIMIT
            } else {
                (fit as usize).max(1)
            }
        });
        let want = |remaining: u64| {
            usize::try_from(remaining)
                .unwrap_or(BATCH_LIMIT)
                .min(per_lease)
        };
        let mut batch = Vec::new();
        loop {
            let remaining = max.saturating_sub(self.summary.replayed());
            if remaining == 0 || self.interrupt.is_set() {
                break;
            }
            if batch.is_empty() {
                batch = scan.next(want(remaining)).await?;
                if batch.is_empty() {
                    break;
                }
            }
            // The next batch is received while this one is replayed: a paced replay spends
            // most of its time waiting for its slots, and a receive added to that wait, every
            // batch, would hold the average below the rate.
            let ahead = remaining.saturating_sub(batch.len() as u64);
            let next = async {
                if ahead == 0 {
                    Ok(Vec::new())
                } else {
                    scan.next(want(ahead)).await
                }
            };
            let ((deleted, handled), next) = tokio::join!(self.handle_batch(&batch, max), next);
            for message_id in &deleted {
                scan.forget(message_id);
            }
            handled?;
            batch = next?;
        }
        self.summary.interrupted = self.interrupt.is_set();
        Ok(())
    }

    /// Replays a batch until it ends, `--max` is reached or Ctrl-C; what it does not reach
    /// stays held, released with the rest when the run ends. Returns the ids of the messages
    /// deleted from the DLQ (the scan no longer holds them), also when a message failed.
    async fn handle_batch(
        &mut self,
        batch: &[DlqMessage],
        max: u64,
    ) -> (Vec<String>, Result<(), DlqError>) {
        let mut deleted = Vec::new();
        for message in batch {
            if self.interrupt.is_set() || self.summary.replayed() >= max {
                break;
            }
            match self.handle(message).await {
                Ok(true) => deleted.push(message.message_id.clone()),
                Ok(false) => {}
                Err(error) => return (deleted, Err(error)),
            }
            self.progress.update(&self.summary);
        }
        (deleted, Ok(()))
    }

    /// Replays one message. `true` when it was deleted from the DLQ.
    async fn handle(&mut self, message: &DlqMessage) -> Result<bool, DlqError> {
        let facts = Facts::of(message, self.role);
        let label = describe(message, &facts);
        if let Some(filter) = &self.filter {
            if !filter.matches(&facts, Utc::now()) {
                self.summary.skipped += 1;
                self.progress.line(false, &format!("skipped    {label}"));
                return Ok(false);
            }
        }
        if let Some(failure) = StreamFailure::recognise(message, self.role) {
            return self.rerun(message, &failure, &label).await;
        }
        let Some(target) = self.target.clone() else {
            return Err(self.no_target.take().unwrap_or(DlqError::NoSourceQueue {
                dlq: self.dlq.name().to_owned(),
            }));
        };
        if self.args.dry_run {
            self.summary.would_move += 1;
            self.progress
                .line(true, &format!("would move {label} → {}", target.name()));
            return Ok(false);
        }
        let (outgoing, replay_count, dropped) = match self.outgoing(message, &target) {
            Ok(built) => built,
            Err(reason) => {
                self.summary.failed += 1;
                self.progress
                    .line(true, &format!("failed     {label}: {reason}"));
                return Ok(false);
            }
        };
        if !self.pacer.wait(&mut self.interrupt).await {
            return Ok(false);
        }
        let send_started = Instant::now();
        let sent = target.send(outgoing).await;
        if let Err(error) = sent {
            let error = referral_domain::error_chain(&error);
            self.summary.failed += 1;
            self.progress.line(
                true,
                &format!(
                    "failed     {label}: sending to {} failed ({error}); it stays in {}",
                    target.name(),
                    self.dlq.name()
                ),
            );
            return Ok(false);
        }
        self.sends.record(send_started);
        let dropped = if dropped.is_empty() {
            String::new()
        } else {
            format!(" (dropped {} to make room)", dropped.join(", "))
        };
        let done = format!(
            "{label} → {} (replay {replay_count}){dropped}",
            target.name()
        );
        let dlq = self.dlq.name();
        Ok(self
            .settle(
                message,
                |summary| &mut summary.moved,
                (format!("copied     {done}"), format!("moved      {done}")),
                |error| {
                    let error = referral_domain::error_chain(error);
                    format!(
                        "failed     {label}: sent to {} but not deleted from {dlq} ({error}); a \
                         rerun sends it again, which is harmless (the enricher skips applied \
                         events)",
                        target.name()
                    )
                },
            )
            .await)
    }

    /// After a message's work succeeded: keeps it in the DLQ (`--copy`) or deletes it, and
    /// counts it with `count` and prints the line of whichever happened (`lines`: kept,
    /// deleted). A failed delete counts as a failure, explained by `undeleted`. `true` when
    /// the message was deleted.
    pub(super) async fn settle(
        &mut self,
        message: &DlqMessage,
        count: fn(&mut Summary) -> &mut u64,
        lines: (String, String),
        undeleted: impl FnOnce(&AdapterError) -> String,
    ) -> bool {
        let (kept, deleted) = lines;
        if self.args.copy {
            *count(&mut self.summary) += 1;
            self.progress.line(false, &kept);
            return false;
        }
        match self.dlq.delete(&message.receipt).await {
            Ok(()) => {
                *count(&mut self.summary) += 1;
                self.progress.line(false, &deleted);
                true
            }
            Err(error) => {
                self.summary.failed += 1;
                self.progress.line(true, &undeleted(&error));
                false
            }
        }
    }

    /// The message to send: body and attributes as they were, `replay_count` added or
    /// incremented, FIFO group kept and a fresh deduplication id.
    fn outgoing(
        &self,
        message: &DlqMessage,
        target: &Queue,
    ) -> Result<(Outgoing, u32, Vec<String>), String> {
        let count = message
            .attribute(REPLAY_COUNT)
            .and_then(|count| count.trim().parse::<u32>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        let mut attributes = message.attributes.clone();
        let value = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(count.to_string())
            .build()
            .map_err(|error| format!("cannot build the {REPLAY_COUNT} attribute: {error}"))?;
        attributes.insert(REPLAY_COUNT.to_owned(), value);
        let dropped = make_room(&mut attributes);
        let mut outgoing = Outgoing {
            body: message.body.clone(),
            attributes,
            ..Outgoing::default()
        };
        if target.is_fifo() {
            outgoing.group_id = Some(
                message
                    .group_id
                    .clone()
                    .or_else(|| message.attribute("customer_ref").map(str::to_owned))
                    .or_else(|| message.attribute("event_id").map(str::to_owned))
                    .unwrap_or_else(|| "replay".to_owned()),
            );
            // Not the original's id (SQS would drop the message as a duplicate of its first
            // send). Stable for a move, so a send repeated after a crash is dropped by SQS;
            // unique per run for a copy, which is asked for on purpose.
            outgoing.deduplication_id = Some(if self.args.copy {
                format!("copy-{}-{}", self.sends.run_id, message.message_id)
            } else {
                format!("replay-{}-{count}", message.message_id)
            });
        }
        Ok((outgoing, count, dropped))
    }
}

/// Drops attributes until SQS's limit is met: `replay_count` was added to a message that
/// may have had ten already. Returns the names dropped.
fn make_room(attributes: &mut HashMap<String, MessageAttributeValue>) -> Vec<String> {
    let mut dropped = Vec::new();
    while attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        let victim = DROPPABLE
            .iter()
            .map(|name| (*name).to_owned())
            .find(|name| attributes.contains_key(name))
            .or_else(|| {
                attributes
                    .keys()
                    .filter(|name| !KEPT.contains(&name.as_str()))
                    .max()
                    .cloned()
            });
        match victim {
            Some(name) => {
                attributes.remove(&name);
                dropped.push(name);
            }
            None => break,
        }
    }
    dropped
}

/// A message for a line of output: id, kind, event id and type; never an address.
fn describe(message: &DlqMessage, facts: &Facts) -> String {
    let mut text = format!("{} kind={}", message.message_id, facts.kind);
    if let Some(event_id) = &facts.event_id {
        text.push_str(&format!(" event={}", mask_emails(event_id)));
    }
    if let Some(event_type) = &facts.event_type {
        text.push_str(&format!(" type={}", mask_emails(event_type)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    }

    #[test]
    fn replay_count_always_fits_and_reason_details_go_first() {
        let mut attributes: HashMap<String, MessageAttributeValue> = [
            "error_kind",
            "error_field",
            "error_message",
            "enricher_version",
            "first_failure_at",
            "source_message_id",
            "event_id",
            "event_type",
            "customer_ref",
            "source",
            REPLAY_COUNT,
        ]
        .into_iter()
        .map(|name| (name.to_owned(), attribute("x")))
        .collect();
        assert_eq!(make_room(&mut attributes), vec!["error_message".to_owned()]);
        assert_eq!(attributes.len(), MAX_MESSAGE_ATTRIBUTES);
        assert!(attributes.contains_key(REPLAY_COUNT));

        let mut others: HashMap<String, MessageAttributeValue> = (0..10)
            .map(|index| (format!("a{index}"), attribute("x")))
            .chain([(REPLAY_COUNT.to_owned(), attribute("1"))])
            .collect();
        assert_eq!(make_room(&mut others), vec!["a9".to_owned()]);
        assert!(others.contains_key(REPLAY_COUNT));

        let mut few: HashMap<String, MessageAttributeValue> =
            [(REPLAY_COUNT.to_owned(), attribute("1"))].into();
        assert!(make_room(&mut few).is_empty());
    }

    #[test]
    fn a_dead_letter_s_trace_goes_back_with_it_whatever_must_make_room() {
        // A dead letter as the enricher writes it from what ingest queued: ten attributes,
        // the webhook's trace among them; the replay's count makes eleven.
        let mut attributes: HashMap<String, MessageAttributeValue> = [
            "error_kind",
            "error_field",
            "error_message",
            "enricher_version",
            "first_failure_at",
            "source_message_id",
            "event_id",
            "event_type",
            "customer_ref",
            referral_domain::trace::TRACEPARENT,
            REPLAY_COUNT,
        ]
        .into_iter()
        .map(|name| (name.to_owned(), attribute("x")))
        .collect();
        make_room(&mut attributes);
        assert!(attributes.contains_key("traceparent"));
        // Even where it would be the first to go by name (after `a…`, before none).
        let mut crowded: HashMap<String, MessageAttributeValue> = (0..10)
            .map(|index| (format!("a{index}"), attribute("x")))
            .chain([("traceparent".to_owned(), attribute("x"))])
            .collect();
        make_room(&mut crowded);
        assert!(crowded.contains_key("traceparent"));
    }
}
