//! What a replay says: a line per message, a progress bar for a person watching, and the
//! summary.

use super::*;

#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Summary {
    pub(super) dlq: String,
    pub(super) target: Option<String>,
    pub(super) filter: Option<String>,
    pub(super) dry_run: bool,
    pub(super) copy: bool,
    /// Messages sent to the target (and deleted from the DLQ unless `copy`).
    pub(super) moved: u64,
    /// Dry run: messages that would have been moved.
    pub(super) would_move: u64,
    /// Stream failure records whose batch the orchestrator re-ran.
    pub(super) stream_reruns: u64,
    /// Dry run: stream failure records whose records are there to re-run.
    pub(super) would_rerun: u64,
    /// Messages created by the re-runs (the others existed already).
    pub(super) messages_created: u64,
    pub(super) skipped: u64,
    /// Messages left in the DLQ because their replay failed.
    pub(super) failed: u64,
    pub(super) interrupted: bool,
    pub(super) elapsed_seconds: f64,
    /// From the start of the first send to the end of the last.
    pub(super) send_window_seconds: f64,
    /// Sends per second over that window.
    pub(super) rate_per_second: Option<f64>,
}

impl Summary {
    pub(super) fn replayed(&self) -> u64 {
        self.moved + self.would_move + self.stream_reruns + self.would_rerun
    }
}

/// Per-message lines and the progress bar.
#[derive(Debug)]
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    to_stderr: bool,
}

impl Progress {
    pub(super) fn new(length: u64, json: bool) -> Self {
        // A bar only for a person watching: logs and pipes get plain lines.
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {per_sec} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            to_stderr: json,
        }
    }

    /// A line about one message. Under the bar only the notable ones are printed.
    pub(super) fn line(&self, notable: bool, text: &str) {
        match &self.bar {
            Some(bar) if notable => bar.println(text),
            Some(_) => {}
            None if self.to_stderr => eprintln!("{text}"),
            None => println!("{text}"),
        }
    }

    pub(super) fn update(&self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
            bar.set_message(format!(
                "moved {} skipped {} failed {}",
                summary.moved + summary.stream_reruns,
                summary.skipped,
                summary.failed
            ));
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Replay<'_> {
    pub(super) fn print_summary(&self, in_flight_at_start: u64) -> Result<(), DlqError> {
        let summary = &self.summary;
        if self.args.json {
            println!("{}", serde_json::to_string(summary)?);
            return Ok(());
        }
        let target = summary.target.as_deref().unwrap_or("(no target queue)");
        let mut head = format!("replay of {} → {target}", summary.dlq);
        if let Some(filter) = &summary.filter {
            head.push_str(&format!(", filter {filter}"));
        }
        if summary.copy {
            head.push_str(", copies");
        }
        println!("{head}");
        if summary.dry_run {
            println!(
                "dry run: would move {}, would re-run {} stream batch(es), skipped {}, failed {}; \
                 nothing was changed",
                summary.would_move, summary.would_rerun, summary.skipped, summary.failed
            );
        } else {
            println!(
                "summary: moved {}, skipped {}, failed {}; stream batches re-run {} ({} message(s) \
                 created)",
                summary.moved,
                summary.skipped,
                summary.failed,
                summary.stream_reruns,
                summary.messages_created
            );
        }
        let mut timing = format!("took {:.2} s", summary.elapsed_seconds);
        if let Some(rate) = summary.rate_per_second {
            timing.push_str(&format!(
                "; {} sends in {:.2} s, {rate:.1}/s",
                self.sends.count, summary.send_window_seconds
            ));
        }
        println!("{timing}");
        if summary.interrupted {
            println!("interrupted: run the same command again to continue");
        }
        if summary.failed > 0 {
            println!(
                "failed messages stay in {} (see the lines above)",
                summary.dlq
            );
        }
        if in_flight_at_start > 0 {
            println!(
                "note: {in_flight_at_start} message(s) were in flight when the run started (held by \
                 another consumer or a crashed run) and were not seen; run again once their lease \
                 has run out"
            );
        }
        Ok(())
    }
}
