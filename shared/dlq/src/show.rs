//! `dlq stats` and `dlq peek`: look without consuming. Messages are received under a short
//! lease, held while the command reads on, and made visible again before it exits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use aws_config::SdkConfig;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::DlqError;
use super::filter::Facts;
use super::queue::{BATCH_LIMIT, DlqMessage, Queue, Scan};
use super::redact;

#[derive(Debug, Clone)]
pub struct StatsOptions {
    /// The queue, by name or URL.
    pub queue: String,
    /// Messages examined at most for the age and the counts by kind (the depth is exact
    /// whatever this is).
    pub scan: u64,
    /// Seconds the examined messages stay hidden at most (they are made visible again as
    /// soon as the scan ends; this bounds it if the process dies).
    pub lease: u32,
    /// Print one JSON object instead of text.
    pub json: bool,
}

#[derive(Debug, Clone)]
pub struct PeekOptions {
    /// The queue, by name or URL.
    pub queue: String,
    /// Messages shown at most.
    pub max: u64,
    /// Show e-mail addresses in clear (they are masked by default).
    pub reveal: bool,
    /// Seconds the shown messages stay hidden at most (they are made visible again as soon
    /// as the peek ends; this bounds it if the process dies).
    pub lease: u32,
    /// Print one JSON object per message instead of text.
    pub json: bool,
}

/// Receives up to `max` messages, each once, and makes them visible again, whatever
/// happened in between.
pub async fn look(queue: &Queue, max: u64, lease: u32) -> Result<Vec<DlqMessage>, DlqError> {
    if let Some(limit) = queue.max_receive_count().await? {
        // Looking is receiving: on a queue with a redrive policy it brings its messages
        // closer to the dead-letter queue.
        eprintln!(
            "warning: {} has a redrive policy (maxReceiveCount {limit}); each look counts as a \
             receive, so looking {limit} times moves a message to its dead-letter queue",
            queue.name()
        );
    }
    let mut scan = Scan::new(queue, lease);
    let mut messages = Vec::new();
    let result = async {
        while (messages.len() as u64) < max {
            let want = usize::try_from(max - messages.len() as u64).unwrap_or(BATCH_LIMIT);
            let batch = scan.next(want.min(BATCH_LIMIT)).await?;
            if batch.is_empty() {
                break;
            }
            messages.extend(batch);
        }
        Ok::<(), DlqError>(())
    }
    .await;
    let released = scan.release_all().await;
    result?;
    released?;
    // Oldest first, as people read a queue.
    messages.sort_by_key(|message| message.sent_at);
    Ok(messages)
}

pub async fn stats(args: &StatsOptions, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let queue = Queue::resolve(&aws_sdk_sqs::Client::new(sdk), &args.queue).await?;
    let role = queue.role().await?;
    let depth = queue.depth().await?;
    let messages = look(&queue, args.scan, args.lease).await?;
    let now = Utc::now();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for message in &messages {
        let facts = Facts::of(message, role);
        *by_kind.entry(facts.kind).or_default() += 1;
        *by_type
            .entry(facts.event_type.unwrap_or_else(|| "unknown".to_owned()))
            .or_default() += 1;
    }
    let oldest: Option<DateTime<Utc>> = messages.iter().filter_map(|message| message.sent_at).min();
    let oldest_age = oldest.map(|sent| (now - sent).num_seconds().max(0));
    if args.json {
        let document = json!({
            "queue": queue.name(),
            "depth": depth.total(),
            "visible": depth.visible,
            "in_flight": depth.in_flight,
            "delayed": depth.delayed,
            "scanned": messages.len(),
            "oldest_sent_at": oldest.map(|sent| sent.to_rfc3339()),
            "oldest_age_seconds": oldest_age,
            "by_kind": by_kind,
            "by_event_type": by_type,
        });
        println!("{}", serde_json::to_string(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let _ = writeln!(out, "queue:          {}", queue.name());
    let _ = writeln!(
        out,
        "depth:          {} ({} visible, {} in flight, {} delayed)",
        depth.total(),
        depth.visible,
        depth.in_flight,
        depth.delayed
    );
    match (oldest, oldest_age) {
        (Some(sent), Some(age)) => {
            let _ = writeln!(
                out,
                "oldest message: {} old (sent {})",
                human_age(age),
                sent.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
        }
        _ => {
            let _ = writeln!(out, "oldest message: -");
        }
    }
    let _ = writeln!(out, "by error kind ({} examined):", messages.len());
    for (kind, count) in &by_kind {
        let _ = writeln!(out, "  {kind:<20} {count}");
    }
    let _ = writeln!(out, "by event type:");
    for (event_type, count) in &by_type {
        let _ = writeln!(out, "  {event_type:<20} {count}");
    }
    let unseen = depth.visible.saturating_sub(messages.len() as u64);
    if unseen > 0 || depth.in_flight > 0 {
        let _ = writeln!(
            out,
            "note: {} message(s) were not examined (in flight with a consumer, or beyond --scan)",
            unseen + depth.in_flight
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

pub async fn peek(args: &PeekOptions, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let queue = Queue::resolve(&aws_sdk_sqs::Client::new(sdk), &args.queue).await?;
    let role = queue.role().await?;
    let messages = look(&queue, args.max, args.lease).await?;
    let now = Utc::now();
    let reveal = args.reveal;
    if args.json {
        for message in &messages {
            let attributes: BTreeMap<String, String> = message
                .strings()
                .into_iter()
                .map(|(name, value)| (name, redact::show(&value, reveal)))
                .collect();
            let document = json!({
                "message_id": message.message_id,
                "receive_count": message.receive_count,
                "sent_at": message.sent_at.map(|sent| sent.to_rfc3339()),
                "error_kind": Facts::of(message, role).kind,
                "group_id": message.group_id.as_deref().map(|group| redact::show(group, reveal)),
                "attributes": attributes,
                "body": redact::body_value(&message.body, reveal),
            });
            println!("{}", serde_json::to_string(&document)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    if messages.is_empty() {
        let _ = writeln!(out, "{}: no visible messages", queue.name());
    }
    for (index, message) in messages.iter().enumerate() {
        let facts = Facts::of(message, role);
        let _ = writeln!(
            out,
            "── message {} of {} ─ {}",
            index + 1,
            messages.len(),
            message.message_id
        );
        let _ = writeln!(out, "error kind:    {}", facts.kind);
        let _ = writeln!(out, "receive count: {}", message.receive_count);
        if let Some(sent) = message.sent_at {
            let _ = writeln!(
                out,
                "sent:          {} ({} ago)",
                sent.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                human_age((now - sent).num_seconds().max(0))
            );
        }
        if let Some(group) = &message.group_id {
            let _ = writeln!(out, "group:         {}", redact::show(group, reveal));
        }
        let _ = writeln!(out, "attributes:");
        for (name, value) in message.strings() {
            let _ = writeln!(out, "  {name} = {}", redact::show(&value, reveal));
        }
        if message.binary_attributes() > 0 {
            let _ = writeln!(
                out,
                "  ({} binary attribute(s) not shown)",
                message.binary_attributes()
            );
        }
        let _ = writeln!(out, "body:");
        for line in redact::display_body(&message.body, reveal).lines() {
            let _ = writeln!(out, "  {line}");
        }
        out.push('\n');
    }
    if !reveal && !messages.is_empty() {
        let _ = writeln!(out, "(e-mail addresses masked; --reveal shows them)");
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// `3d 4h`, `12m 5s`, `40s`: the two largest units.
pub fn human_age(seconds: i64) -> String {
    let units = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = seconds.max(0);
    for (size, unit) in units {
        if rest >= size || (parts.is_empty() && size == 1) {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    if parts.is_empty() {
        parts.push("0s".to_owned());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::human_age;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(human_age(0), "0s");
        assert_eq!(human_age(40), "40s");
        assert_eq!(human_age(725), "12m 5s");
        assert_eq!(human_age(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(human_age(-5), "0s");
    }
}
