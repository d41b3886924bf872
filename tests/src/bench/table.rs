//! The benchmark's figures as a table a person reads.

use std::fmt::Write;

use super::BenchReport;

pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} deliveries ({} applied events) in {} batches, {} enricher process(es)",
        report.deliveries, report.applied_events, report.batches, report.instances
    );
    let _ = writeln!(out, "per applied event:");
    let _ = writeln!(out, "  DynamoDB requests          {:>8.2}", report.requests);
    for (operation, count) in &report.requests_by_operation {
        let _ = writeln!(out, "    {operation:<24} {count:>8.2}");
    }
    let _ = writeln!(
        out,
        "  write units                {:>8.2}",
        report.write_units
    );
    let _ = writeln!(
        out,
        "  read units                 {:>8.2}",
        report.read_units
    );
    let _ = writeln!(
        out,
        "    hot path (features)      {:>8.2} write, {:.2} read",
        report.features_write_units, report.features_read_units
    );
    let _ = writeln!(
        out,
        "    late path (archive)      {:>8.2} write, {:.2} read",
        report.archive_write_units, report.archive_read_units
    );
    let _ = writeln!(
        out,
        "  USD per million events     {:>8.3}",
        report.usd_per_million_events
    );
    let _ = writeln!(
        out,
        "largest item                 {:>8} B (archive bucket {} B)",
        report.largest_item_bytes, report.largest_archive_item_bytes
    );
    let _ = writeln!(
        out,
        "stream records {:>6}: mean {:.0} B, max {} B",
        report.stream_records, report.stream_record_bytes_mean, report.stream_record_bytes_max
    );
    let _ = writeln!(
        out,
        "CPU per delivered event      {:>8.3} ms (whole process, start-up included)",
        report.cpu_ms_per_delivered_event
    );
    if let Some(rss) = report.peak_rss_mb {
        let _ = writeln!(out, "peak RSS                     {rss:>8.1} MB");
    }
    if let Some(cold) = report.spawn_to_first_poll_ms {
        let _ = writeln!(out, "spawn to first poll          {cold:>8.1} ms");
    }
    if let Some(median) = report.median_invoke_ms {
        let _ = writeln!(out, "median invocation            {median:>8.2} ms");
    }
    let _ = writeln!(
        out,
        "item failures                {:>8}",
        report.item_failures
    );
    out
}
