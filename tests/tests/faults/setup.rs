//! One pipeline of the suite's own in moto: fresh tables (stream on), the webhook queue with
//! a short visibility timeout and its DLQ (redrive), the stream's failure queue; and the
//! orchestrator function as the stream mapping invokes it, with the faults of a plan.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use chrono::Utc;
use referral_aws::dynamo::{DynamoEventArchive, DynamoFeatureStore, DynamoMessageStore};
use referral_aws::sqs::SqsQueue;
use referral_aws_local::provision::{QueuePair, QueueSpec, TableNames, ensure_queue_pair};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::fallback::FallbackCounters;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, ThrottlePolicy};
use referral_domain::ports::{FeatureStore, MessageKey, OutgoingMessage, WorkQueue};
use referral_enricher::EnricherHandler;
use referral_orchestrator::OrchestratorHandler;
use referral_tests::counting::FailingFor;
use referral_tests::emulator::{endpoint, fresh_tables, queue_depth, sdk_config, unique};
use referral_tests::faults::crash::{
    Crash, CrashingArchive, CrashingStore, FaultyMessages, MessageFault, Tripwire,
};
use referral_tests::faults::invariants::{BedrockLog, Sent, World};
use referral_tests::faults::sqs::CrashableHandler;
use referral_tests::faults::stream::{Delivery, Invoked, StreamFunction};
use referral_tests::faults::world::{
    read_archive, read_dead_letters, read_features, read_messages,
};

use crate::bedrock::{Behaviour, Generator, Script};

/// The resources of one scenario.
#[derive(Debug)]
pub struct Pipeline {
    pub sdk: SdkConfig,
    pub tables: TableNames,
    pub stream_arn: String,
    pub queues: QueuePair,
    pub failures: SqsQueue,
}

impl Pipeline {
    /// Fresh resources; the webhook queue hides a received message for `visibility`
    /// seconds and redrives it after `max_receives` receives.
    pub async fn new(visibility: u32, max_receives: u32) -> Self {
        // Probes the emulator; then the functions' own loading, with its lenient timeouts
        // for an emulator on loopback.
        sdk_config().await;
        let sdk = referral_aws::config::load(Some(&endpoint())).await;
        let (tables, stream_arn) = fresh_tables(&sdk).await;
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        let name = unique("faults");
        let queues = ensure_queue_pair(
            &sqs,
            &QueueSpec {
                dlq_name: format!("{name}-dlq"),
                name: name.clone(),
                max_receive_count: max_receives,
                visibility_timeout_seconds: visibility,
            },
        )
        .await
        .unwrap();
        let failures_url = sqs
            .create_queue()
            .queue_name(format!("{name}-stream-failures"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Pipeline {
            failures: SqsQueue::new(sqs, failures_url).with_wait_seconds(0),
            sdk,
            tables,
            stream_arn,
            queues,
        }
    }

    pub fn features(&self) -> DynamoFeatureStore {
        DynamoFeatureStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.tables.features.clone(),
        )
    }

    pub fn archive(&self) -> DynamoEventArchive {
        DynamoEventArchive::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.tables.archive.clone(),
        )
    }

    /// One enricher execution environment over this pipeline's tables and dead-letter
    /// queue, `store` in front of its feature table; its writes can be crashed.
    pub fn enricher<S: FeatureStore>(
        &self,
        store: S,
        config: EnricherConfig,
    ) -> CrashableHandler<S, DynamoEventArchive, SqsQueue> {
        let tripwire = Tripwire::new();
        EnricherHandler::new(
            Enricher::new(
                CrashingStore::with_tripwire(store, Arc::clone(&tripwire)),
                CrashingArchive::new(self.archive(), tripwire),
                config,
            ),
            self.dead_letters(),
        )
    }

    pub fn messages(&self) -> DynamoMessageStore {
        DynamoMessageStore::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            self.tables.messages.clone(),
        )
    }

    fn queue(&self, url: &str) -> SqsQueue {
        SqsQueue::new(aws_sdk_sqs::Client::new(&self.sdk), url).with_wait_seconds(0)
    }

    pub fn source(&self) -> SqsQueue {
        self.queue(&self.queues.url)
    }

    pub fn dead_letters(&self) -> SqsQueue {
        self.queue(&self.queues.dlq_url)
    }

    /// Sends `bodies` a window at a time, each once the queue holds at most `window`
    /// messages (moto's SQS scans its whole queue on every receive, so a queue of thousands
    /// makes each receive take seconds), then sets `fed`.
    pub async fn feed(&self, bodies: &[String], window: usize, fed: &AtomicBool) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        for chunk in bodies.chunks(window / 2) {
            loop {
                let (visible, in_flight) = queue_depth(&sqs, &self.queues.url).await;
                if (visible + in_flight) as usize <= window / 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.send(chunk).await;
        }
        fed.store(true, Ordering::SeqCst);
    }

    pub async fn send(&self, bodies: &[String]) {
        let messages = bodies
            .iter()
            .map(|body| OutgoingMessage {
                body: body.clone(),
                attributes: Default::default(),
            })
            .collect();
        self.source().send(messages).await.unwrap();
    }

    pub async fn stream(&self) -> (DynamoStreamFeed, String) {
        let client = aws_sdk_dynamodbstreams::Client::new(&self.sdk);
        let described = client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .unwrap();
        let shards = described.stream_description.unwrap().shards.unwrap();
        // moto keeps one shard per table; the mapping below plays one shard's poller.
        assert_eq!(shards.len(), 1, "{shards:?}");
        let shard = shards[0].shard_id.clone().unwrap();
        let feed = DynamoStreamFeed::start(
            client,
            self.stream_arn.clone(),
            StartingPosition::TrimHorizon,
        )
        .await
        .unwrap();
        (feed, shard)
    }

    /// The world as the invariants see it, read back from moto.
    pub async fn world(
        &self,
        sent: Vec<Sent>,
        given_up: BTreeSet<(String, u64)>,
        bedrock: Option<BedrockLog>,
    ) -> World {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        let (decisions, claims) = read_messages(&dynamodb, &self.tables.messages).await;
        let (visible, in_flight) =
            queue_depth(&aws_sdk_sqs::Client::new(&self.sdk), &self.queues.url).await;
        let features = read_features(&self.features()).await;
        World {
            sent,
            memory_limits: EnricherConfig::default().memory,
            archive: read_archive(&self.archive(), features.keys()).await,
            features,
            decisions,
            claims,
            dead_letters: read_dead_letters(&self.dead_letters()).await,
            queue_left: visible + in_flight,
            given_up,
            bedrock,
        }
    }
}

/// The changes of stream records, as (customer, version) of their new images.
pub fn changes_of(
    records: &[aws_lambda_events::event::dynamodb::EventRecord],
) -> BTreeSet<(String, u64)> {
    records
        .iter()
        .filter_map(|record| referral_aws::stream_record::change_record(record).ok())
        .filter_map(|change| {
            let image = change.new_image?;
            Some((image.customer_email.clone(), image.version))
        })
        .collect()
}

/// What happens at which invocation of the orchestrator.
#[derive(Debug, Default)]
pub struct Plan {
    /// Bedrock behaves this way for every call of these invocations.
    pub stretches: Vec<(std::ops::RangeInclusive<u64>, Behaviour)>,
    /// From this invocation on, the message store fails this way once (in the first
    /// invocation that reaches the call it hits), in order.
    pub faults: Vec<(u64, MessageFault)>,
    /// Time left to the invocation's deadline when it starts.
    pub time_left: Option<Duration>,
    /// Added to the clock the function reads (changes look that much older).
    pub clock_offset: chrono::Duration,
}

/// Claims of this customer's messages always fail: a record that stays stuck.
pub const STUCK: &str = "stuck";

pub type Messages = FaultyMessages<FailingFor<DynamoMessageStore>>;
pub type Handler = OrchestratorHandler<Generator, Messages>;

/// The orchestrator's handler over the pipeline's message table, with `generator`.
pub fn handler(pipeline: &Pipeline, generator: Generator, throttle: ThrottlePolicy) -> Handler {
    OrchestratorHandler::new(Orchestrator::new(
        generator,
        FaultyMessages::new(FailingFor {
            inner: pipeline.messages(),
            poisoned: STUCK,
        }),
        OrchestratorConfig {
            throttle,
            ..OrchestratorConfig::default()
        },
    ))
}

/// The orchestrator function as the stream mapping invokes it.
#[derive(Debug)]
pub struct Orchestrate<'a> {
    pub handler: &'a Handler,
    pub script: Arc<Script>,
    pub plan: Plan,
    /// The generator's counters, summed over invocations as CloudWatch sums them.
    pub counters: Mutex<FallbackCounters>,
    /// Faults of the plan not injected yet.
    pending: Mutex<VecDeque<(u64, MessageFault)>>,
}

impl<'a> Orchestrate<'a> {
    pub fn new(handler: &'a Handler, script: Arc<Script>, plan: Plan) -> Self {
        Orchestrate {
            handler,
            script,
            pending: Mutex::new(plan.faults.iter().copied().collect()),
            plan,
            counters: Mutex::default(),
        }
    }

    /// The faults injected, with the change each hit.
    pub fn injected(&self) -> Vec<(MessageFault, MessageKey)> {
        self.handler.orchestrator().messages().injected()
    }

    /// Every Bedrock call and the fallback counters, for the invariants.
    pub fn bedrock_log(&self) -> BedrockLog {
        BedrockLog {
            calls: self.handler.orchestrator().generator().primary().calls(),
            counters: *self.counters.lock().unwrap(),
        }
    }
}

impl StreamFunction for Orchestrate<'_> {
    async fn invoke(&self, delivery: Delivery<'_>) -> Invoked {
        let stretch = self
            .plan
            .stretches
            .iter()
            .find(|(invocations, _)| invocations.contains(&delivery.number))
            .map(|(_, behaviour)| *behaviour);
        self.script.set_stretch(stretch);
        let crash = Crash::new();
        let messages = self.handler.orchestrator().messages();
        let due = self
            .pending
            .lock()
            .unwrap()
            .front()
            .copied()
            .filter(|(from, _)| *from <= delivery.number);
        if let Some((_, fault)) = due {
            messages.arm(fault, Arc::clone(&crash));
        }
        let injected_before = messages.injected().len();
        let now = Utc::now() + self.plan.clock_offset;
        let outcome = crash
            .run(
                self.handler
                    .handle_until(delivery.event, now, self.plan.time_left),
            )
            .await;
        messages.disarm();
        if messages.injected().len() > injected_before {
            self.pending.lock().unwrap().pop_front();
        }
        let generated = self.handler.orchestrator().generator().take_counters();
        self.counters.lock().unwrap().add(&generated);
        match outcome {
            Some(outcome) => Invoked::Responded {
                response: outcome.response,
                counters: outcome.counters,
            },
            None => Invoked::Crashed,
        }
    }
}
