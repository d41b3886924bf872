//! `dlq export` and `dlq import`: dead letters to a JSON Lines file and back, so a person
//! can fix what the enricher refused and send it again.
//!
//! One line per message:
//! `{"message_id": "…", "body": "…", "attributes": {"name": "value"}, "receive_count": 3,
//!   "sent_at": "2026-06-01T09:00:00Z", "group_id": "…"}` (`group_id` on FIFO queues only).
//! Import needs only `body`; `attributes` are sent back as they are.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::MessageAttributeValue;
use chrono::{DateTime, Utc};
use referral_aws::sqs::{MAX_MESSAGE_ATTRIBUTES, MAX_MESSAGE_BYTES, string_attributes};
use referral_domain::redact::short_hash;
use serde::{Deserialize, Serialize};

use super::DlqError;
use super::queue::{BATCH_LIMIT, Outgoing, Queue, Scan};

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The queue, by name or URL.
    pub queue: String,
    /// The JSON Lines file to write (created with owner-only permissions: it holds customer
    /// data in clear).
    pub out: PathBuf,
    /// Delete the exported messages from the queue, once the whole file is written and
    /// synced to disk.
    pub delete: bool,
    /// Messages exported at most (default: all).
    pub max: Option<u64>,
    /// Overwrite FILE if it exists.
    pub force: bool,
    /// Seconds the exported messages stay hidden while the export runs; it must cover
    /// writing the file, or a message could be received twice.
    pub lease: u32,
}

#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// A JSON Lines file written by `referral dlq export` (possibly fixed by hand).
    pub file: PathBuf,
    /// The queue to send the messages to, by name or URL.
    pub to: String,
}

/// One exported message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    pub body: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DlqError {
    let path = path.to_owned();
    move |source| DlqError::Io {
        action,
        path,
        source,
    }
}

fn create_file(path: &Path, force: bool) -> Result<File, DlqError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            DlqError::OutputExists {
                path: path.to_owned(),
            }
        } else {
            DlqError::Io {
                action: "create",
                path: path.to_owned(),
                source,
            }
        }
    })
}

pub async fn export(args: &ExportOptions, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let queue = Queue::resolve(&aws_sdk_sqs::Client::new(sdk), &args.queue).await?;
    let file = create_file(&args.out, args.force)?;
    let mut scan = Scan::new(&queue, args.lease);
    let written = write_export(&mut scan, file, args).await;
    let (count, binary) = match written {
        Ok(counts) => counts,
        Err(error) => {
            // Nothing is deleted when the file is not complete.
            let _ = scan.release_all().await;
            return Err(error);
        }
    };
    let mut refused = 0;
    if args.delete {
        // The file is on disk and synced: only now may the messages go.
        refused = queue.delete_many(&scan.held_receipts()).await?;
        scan.clear();
    } else {
        scan.release_all().await?;
    }
    println!(
        "exported {count} message(s) from {} to {}{}",
        queue.name(),
        args.out.display(),
        if args.delete {
            "; deleted them from the queue"
        } else {
            "; the queue is unchanged"
        }
    );
    if binary > 0 {
        eprintln!(
            "warning: {binary} binary message attribute(s) could not be written to JSON and were \
             left out of the file"
        );
    }
    if refused > 0 {
        eprintln!(
            "warning: {refused} message(s) could not be deleted (their lease ran out: raise \
             --lease); they are in the file and still in the queue, so do not import them as well \
             as replay them (it is harmless, but counts twice in the queue)"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes every message (up to `--max`) and syncs the file. Returns the count of messages
/// and of binary attributes left out.
async fn write_export(
    scan: &mut Scan<'_>,
    file: File,
    args: &ExportOptions,
) -> Result<(u64, usize), DlqError> {
    let mut writer = BufWriter::new(file);
    let mut count: u64 = 0;
    let mut binary = 0;
    let max = args.max.unwrap_or(u64::MAX);
    while count < max {
        let want = usize::try_from(max - count).unwrap_or(BATCH_LIMIT);
        let batch = scan.next(want.min(BATCH_LIMIT)).await?;
        if batch.is_empty() {
            break;
        }
        for message in batch {
            binary += message.binary_attributes();
            let line = Line {
                attributes: message.strings(),
                message_id: Some(message.message_id),
                body: message.body,
                receive_count: Some(message.receive_count),
                sent_at: message.sent_at,
                group_id: message.group_id,
            };
            serde_json::to_writer(&mut writer, &line)?;
            writer
                .write_all(b"\n")
                .map_err(io_error("write", &args.out))?;
            count += 1;
        }
    }
    let file = writer.into_inner().map_err(|error| DlqError::Io {
        action: "write",
        path: args.out.clone(),
        source: error.into_error(),
    })?;
    file.sync_all().map_err(io_error("sync", &args.out))?;
    Ok((count, binary))
}

/// Reads and checks every line before anything is sent.
pub fn read_lines(path: &Path) -> Result<Vec<(usize, Line)>, DlqError> {
    let file = File::open(path).map_err(io_error("open", path))?;
    let mut lines = Vec::new();
    for (index, text) in BufReader::new(file).lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(io_error("read", path))?;
        if text.trim().is_empty() {
            continue;
        }
        let bad = |detail: String| DlqError::ImportLine {
            path: path.to_owned(),
            line: number,
            detail,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|error| bad(format!("not JSON ({error})")))?;
        let line: Line = serde_json::from_value(value)
            .map_err(|error| bad(format!("not an exported message ({error})")))?;
        if line.body.len() > MAX_MESSAGE_BYTES {
            return Err(bad(format!(
                "the body has {} bytes, more than SQS's {MAX_MESSAGE_BYTES}",
                line.body.len()
            )));
        }
        // Empty values are left out when sending (SQS refuses them), so they do not count.
        let attributes = line
            .attributes
            .values()
            .filter(|value| !value.is_empty())
            .count();
        if attributes > MAX_MESSAGE_ATTRIBUTES {
            return Err(bad(format!(
                "{attributes} message attributes with a value, more than SQS's \
                 {MAX_MESSAGE_ATTRIBUTES}"
            )));
        }
        lines.push((number, line));
    }
    Ok(lines)
}

pub async fn import(args: &ImportOptions, sdk: &SdkConfig) -> Result<ExitCode, DlqError> {
    let lines = read_lines(&args.file)?;
    let queue = Queue::resolve(&aws_sdk_sqs::Client::new(sdk), &args.to).await?;
    // FIFO deduplication ids are fresh for each import, yet equal for the same line of the
    // same run, so a retried send inside SQS's five-minute window is not doubled.
    let run = short_hash(format!("{:?}{}", Utc::now(), std::process::id()).as_bytes());
    for (number, line) in &lines {
        let attributes: HashMap<String, MessageAttributeValue> =
            string_attributes(&line.attributes).map_err(|source| DlqError::ImportSend {
                path: args.file.clone(),
                line: *number,
                queue: queue.name().to_owned(),
                source,
            })?;
        let mut outgoing = Outgoing {
            body: line.body.clone(),
            attributes,
            ..Outgoing::default()
        };
        if queue.is_fifo() {
            outgoing.group_id = Some(
                line.group_id
                    .clone()
                    .or_else(|| line.attributes.get("customer_ref").cloned())
                    .unwrap_or_else(|| "import".to_owned()),
            );
            outgoing.deduplication_id = Some(format!("import-{run}-{number}"));
        }
        queue
            .send(outgoing)
            .await
            .map_err(|source| DlqError::ImportSend {
                path: args.file.clone(),
                line: *number,
                queue: queue.name().to_owned(),
                source,
            })?;
    }
    println!(
        "imported {} message(s) from {} into {}",
        lines.len(),
        args.file.display(),
        queue.name()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_checked_before_anything_is_sent() {
        let dir = std::env::temp_dir().join(format!("dlq-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.jsonl");
        std::fs::write(
            &good,
            "{\"body\":\"{}\",\"attributes\":{\"event_id\":\"e1\"}}\n\n{\"message_id\":\"m\",\"body\":\"x\",\"receive_count\":2,\"sent_at\":\"2026-06-01T09:00:00Z\"}\n",
        )
        .unwrap();
        let lines = read_lines(&good).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].0, 1);
        assert_eq!(lines[1].0, 3);
        assert_eq!(lines[0].1.attributes["event_id"], "e1");

        let bad = dir.join("bad.jsonl");
        std::fs::write(&bad, "{\"body\":\"{}\"}\n{\"attributes\":{}}\n").unwrap();
        let error = read_lines(&bad).unwrap_err().to_string();
        assert!(error.contains("bad.jsonl:2"), "{error}");
        assert!(error.contains("nothing was sent"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_line_with_more_attributes_than_sqs_takes_is_refused_before_sending() {
        let dir = std::env::temp_dir().join(format!("dlq-import-attrs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = |count: usize, empty: bool| {
            let mut attributes: BTreeMap<String, String> = (0..count)
                .map(|index| (format!("a{index:02}"), "x".to_owned()))
                .collect();
            if empty {
                attributes.insert("blank".to_owned(), String::new());
            }
            serde_json::to_string(&serde_json::json!({"body": "{}", "attributes": attributes}))
                .unwrap()
        };

        // Ten, plus an empty one that is not sent: accepted.
        let fits = dir.join("fits.jsonl");
        std::fs::write(&fits, format!("{}\n{}\n", line(10, false), line(10, true))).unwrap();
        assert_eq!(read_lines(&fits).unwrap().len(), 2);

        let over = dir.join("over.jsonl");
        std::fs::write(
            &over,
            format!(
                "{}\n{}\n{}\n",
                line(1, false),
                line(11, false),
                line(1, false)
            ),
        )
        .unwrap();
        let error = read_lines(&over).unwrap_err().to_string();
        assert!(error.contains("over.jsonl:2"), "{error}");
        assert!(error.contains("11 message attributes"), "{error}");
        assert!(error.contains("nothing was sent"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
