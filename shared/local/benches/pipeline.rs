//! Throughput of parse + validate, and of the whole embedded pipeline (queue → enricher →
//! store → change feed → orchestrator with the template generator, then the read-back of
//! features and messages that `referral run` prints), on one core.
//! Target: the embedded pipeline above 200,000 events/s in release mode.
// A benchmark that cannot set itself up has nothing to measure: aborting is the answer.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use referral_domain::event::parse_webhook;
use referral_local::pipeline::{InputEvent, RunConfig, run_in_memory};
use serde_json::json;

fn body(i: usize, customers: usize) -> String {
    let customer = i % customers;
    json!({
        "event_id": format!("evt_{i:08}"),
        "event_type": "service.completed",
        "occurred_at": format!("2026-{:02}-{:02}T{:02}:04:05Z", 1 + i % 12, 1 + i % 28, i % 24),
        "customer": {
            "email": format!("Customer.{customer}@Example.com"),
            "name": "Jane Doe",
            "address": {"street": "1 Elm St", "city": "Austin", "state": "TX", "zip": "78701"}
        },
        "service": {"id": format!("svc_{i}"), "type": "pest_control", "satisfaction_score": (i % 6) as f64 * 0.9},
        "property_info": {"type": "single_family", "square_feet": 2500, "year_built": 1998, "pest_issues": ["ants"]},
        "services_count": i % 9
    })
    .to_string()
}

fn parse_and_validate(c: &mut Criterion) {
    let bodies: Vec<String> = (0..1000).map(|i| body(i, 100)).collect();
    let mut group = c.benchmark_group("parse_and_validate");
    group.throughput(Throughput::Elements(bodies.len() as u64));
    group.bench_function("service.completed", |b| {
        b.iter(|| {
            for body in &bodies {
                std::hint::black_box(parse_webhook(body).is_ok());
            }
        });
    });
    group.finish();
}

fn embedded_pipeline(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build the runtime: {error}"),
    };
    let mut group = c.benchmark_group("embedded_pipeline");
    group.sample_size(20);
    // 10 events a customer, 10 messages a batch: a write and a message per batch-customer.
    for (events, customers) in [(20_000, 2_000), (20_000, 200)] {
        let inputs: Vec<InputEvent> = (0..events)
            .map(|i| InputEvent {
                source: format!("bench:{i}"),
                body: body(i, customers),
                utf8: true,
            })
            .collect();
        group.throughput(Throughput::Elements(events as u64));
        group.bench_with_input(
            BenchmarkId::new("events", format!("{events}ev_{customers}customers")),
            &inputs,
            |b, inputs| {
                b.iter(|| {
                    runtime.block_on(async {
                        let run = run_in_memory(inputs, RunConfig::default()).await;
                        std::hint::black_box(run.map(|(report, _)| report.enrich.applied))
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, parse_and_validate, embedded_pipeline);
criterion_main!(benches);
