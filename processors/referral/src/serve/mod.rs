//! `referral local serve`: the asynchronous pipeline on this machine until Ctrl-C, this
//! process playing API Gateway and both event-source mappings. With no endpoint it runs on
//! the embedded adapters (an in-memory queue with SQS's rules and a dead-letter queue,
//! feature store with its change feed, message store): no emulator, no credentials, no
//! network beyond loopback. With `--endpoint-url` (or `--aws`) the same loops run against
//! AWS APIs.

mod activity;
mod listener;
mod lookups;
mod routes;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use referral_aws::sqs::SqsQueue;
use referral_domain::enricher::{Enricher, EnricherConfig};
use referral_domain::env::{EnvError, Vars};
use referral_domain::features::RuleError;
use referral_domain::orchestrator::{Orchestrator, OrchestratorConfig, StreamCounters};
use referral_domain::ports::{AdapterError, FeatureStore, MessageStore, WorkQueue};
use referral_domain::redact::CUSTOMER_REF_KEY_VAR;
use referral_domain::template::TemplateGenerator;
use referral_enricher::EnricherHandler;
use referral_ingest::Deps;
use referral_ingest::config::{QUEUE_URL_VAR, SECRETS_VAR};
use referral_local::embedded::{
    EmbeddedArchive, EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue, QueueRules,
};
use referral_local::mapping::StreamMapping;
use referral_local::pipeline::{BatchHandler, Enriching, StreamConsumer};
use referral_local::queue_mapping::{QueueMapping, QueueMappingError, QueueMappingSettings, Retry};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::DEVELOPMENT_SECRET;
use crate::dlq::{self, DlqError};
use crate::lifetime::LifetimeValueArgs;
use crate::names::{RedriveArgs, ResourceNames};
use crate::policy::PolicyArgs;
use crate::remote::{self, LambdaEnricher};
pub use activity::Activity;
pub use listener::{HEADER_TIMEOUT, Limits, MAX_CONNECTIONS, MAX_HEADER_BYTES, REQUEST_TIMEOUT};
pub use lookups::{DEAD_LETTERS_SHOWN, DeadLetters, LookupError, Lookups};
use referral_aws_local::stream_reader::{DynamoStreamFeed, StartingPosition};
pub use routes::{MAX_BODY_BYTES, REPLAY_HEADER, Routes};

const DEFAULT_PORT: u16 = 8080;
/// How long an idle poller sleeps before it looks again. In memory a look is free, and a
/// webhook is in the features and messages well within a second; DynamoDB Streams allow
/// five reads a second per shard, and SQS long-polls anyway.
const EMBEDDED_IDLE: Duration = Duration::from_millis(50);
const AWS_IDLE: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Port of the listener on 127.0.0.1 (0: any free port, printed at start).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Webhook secrets, comma-separated (at most two, for rotation).
    #[arg(long, env = "WEBHOOK_SECRETS", default_value = DEVELOPMENT_SECRET, hide_env_values = true)]
    secrets: String,
    /// Messages per enricher invocation.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=10))]
    batch_size: u16,
    /// Run against the AWS account of the default credential chain instead of the embedded
    /// adapters (with `--endpoint-url`, against that endpoint).
    #[arg(long)]
    aws: bool,
    /// Connections served at once; more wait until one ends.
    #[arg(
        long,
        default_value_t = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX),
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    max_connections: u32,
    /// Milliseconds a client has to send a request's headers (the tests shorten it).
    #[arg(long, default_value_t = duration_ms(HEADER_TIMEOUT), hide = true)]
    header_timeout_ms: u64,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    lifetime_value: LifetimeValueArgs,
    #[command(flatten)]
    resources: ResourceNames,
    #[command(flatten)]
    redrive: RedriveArgs,
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            // A request may take as long as its headers may, and then some.
            request_timeout: REQUEST_TIMEOUT.max(Duration::from_millis(self.header_timeout_ms)),
        }
    }

    /// The enricher's settings: the defaults, with the flags' lifetime-value rule.
    fn enricher_config(&self) -> Result<EnricherConfig, RuleError> {
        Ok(EnricherConfig {
            lifetime_value: self.lifetime_value.rule()?,
            ..EnricherConfig::default()
        })
    }

    /// Whether the pipeline runs through AWS APIs rather than in memory.
    pub fn needs_aws(&self, endpoint: Option<&str>) -> bool {
        self.aws || endpoint.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Aws(#[from] AdapterError),
    #[error(transparent)]
    DeadLetterQueue(#[from] DlqError),
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("ingest configuration: {0}")]
    Ingest(#[from] EnvError),
    #[error("cannot wait for Ctrl-C: {0}")]
    Signal(#[source] std::io::Error),
    #[error(transparent)]
    Rule(#[from] RuleError),
}

pub async fn serve(
    args: &ServeArgs,
    sdk: Option<&aws_config::SdkConfig>,
) -> Result<ExitCode, ServeError> {
    referral_aws::telemetry::init();
    // Refused before anything listens.
    let enricher_config = args.enricher_config()?;
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|source| ServeError::Listen {
            port: args.port,
            source,
        })?;
    if args.secrets == DEVELOPMENT_SECRET {
        tracing::warn!(
            "using the built-in development webhook secret; set WEBHOOK_SECRETS for anything else"
        );
    }
    tracing::info!("Bedrock is not used locally: messages come from the template generator");
    match sdk {
        None => serve_embedded(args, listener, enricher_config).await,
        Some(sdk) => serve_aws(args, sdk, listener, enricher_config).await,
    }
}

/// Everything in this process's memory, gone when it stops.
async fn serve_embedded(
    args: &ServeArgs,
    listener: TcpListener,
    enricher_config: EnricherConfig,
) -> Result<ExitCode, ServeError> {
    let features = Arc::new(EmbeddedFeatureStore::new());
    let archive = Arc::new(EmbeddedArchive::new());
    let messages = Arc::new(EmbeddedMessageStore::with_retention(
        args.policy.retention.message_retention,
    ));
    let dead_letters = Arc::new(EmbeddedQueue::new());
    let queue = Arc::new(EmbeddedQueue::with_rules(QueueRules {
        max_receive_count: Some(args.redrive.max_receive_count),
        dead_letters: Some(Arc::clone(&dead_letters)),
        ..QueueRules::default()
    }));
    // Only the SQS adapter reads the URL; the ingest configuration wants one all the same.
    let queue_url = format!("http://localhost/embedded/{}", args.resources.queue);
    let enricher = LambdaEnricher::with_handler(
        EnricherHandler::new(
            Enricher::new(Arc::clone(&features), archive, enricher_config),
            Arc::clone(&dead_letters),
        ),
        format!("arn:aws:sqs:local:000000000000:{}", args.resources.queue),
    );
    let orchestrator = Orchestrator::new(
        TemplateGenerator,
        Arc::clone(&messages),
        OrchestratorConfig {
            policy: args.policy.policy(),
            ..OrchestratorConfig::default()
        },
    );
    let stream = StreamMapping::new(Arc::clone(&features), &orchestrator);
    let routes = Arc::new(Routes {
        ingest: ingest_deps(args, Arc::clone(&queue), queue_url)?,
        lookups: Lookups {
            features,
            messages,
            dead_letters,
        },
        activity: Arc::default(),
    });
    eprintln!("referral local serve: embedded pipeline in memory (nothing is kept after it stops)");
    run_loops(
        args,
        listener,
        routes,
        (&*queue, &enricher, &stream),
        EMBEDDED_IDLE,
    )
    .await
}

/// Tables and queues through AWS APIs, created if absent.
async fn serve_aws(
    args: &ServeArgs,
    sdk: &aws_config::SdkConfig,
    listener: TcpListener,
    enricher_config: EnricherConfig,
) -> Result<ExitCode, ServeError> {
    let resources = remote::setup(sdk, &args.resources, args.redrive.max_receive_count).await?;
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let enricher = LambdaEnricher::new(sdk, &resources, enricher_config);
    let queue = SqsQueue::new(sqs.clone(), resources.queues.url.clone()).with_wait_seconds(1);
    let feed = DynamoStreamFeed::start(
        aws_sdk_dynamodbstreams::Client::new(sdk),
        resources.stream_arn.clone(),
        // The orchestrator is idempotent: replaying retained records only finds them done.
        StartingPosition::TrimHorizon,
    )
    .await?;
    let messages = remote::message_store(sdk, &resources, args.policy.retention.message_retention);
    let orchestrator = Orchestrator::new(
        TemplateGenerator,
        messages.clone(),
        OrchestratorConfig {
            policy: args.policy.policy(),
            ..OrchestratorConfig::default()
        },
    );
    let stream = StreamMapping::new(feed, &orchestrator);
    let routes = Arc::new(Routes {
        ingest: ingest_deps(
            args,
            SqsQueue::new(sqs.clone(), resources.queues.url.clone()),
            resources.queues.url.clone(),
        )?,
        lookups: Lookups {
            features: enricher.store().clone(),
            messages,
            dead_letters: dlq::Queue::resolve(&sqs, &resources.queues.dlq_url).await?,
        },
        activity: Arc::default(),
    });
    eprintln!("referral local serve: pipeline through AWS APIs (tables and queues as named)");
    run_loops(
        args,
        listener,
        routes,
        (&queue, &enricher, &stream),
        AWS_IDLE,
    )
    .await
}

/// The ingest handler's dependencies, configured as the template configures the Lambda.
fn ingest_deps<Q: WorkQueue>(
    args: &ServeArgs,
    queue: Q,
    queue_url: String,
) -> Result<Deps<Q>, EnvError> {
    // The customer-ref key is this process's, as `customer_ref` reads it everywhere.
    let process = Vars::process();
    let config = referral_ingest::Config::from_vars(&Vars::new(|name: &str| match name {
        SECRETS_VAR => Some(args.secrets.clone()),
        QUEUE_URL_VAR => Some(queue_url.clone()),
        CUSTOMER_REF_KEY_VAR => process.get(name),
        _ => None,
    }))?;
    Ok(Deps::new(config, queue))
}

/// The listener, the SQS mapping and the stream mapping, until Ctrl-C.
async fn run_loops<Q, S, M, D, R, H, C>(
    args: &ServeArgs,
    listener: TcpListener,
    routes: Arc<Routes<Q, S, M, D>>,
    (queue, enricher, stream): (&R, &H, &C),
    idle: Duration,
) -> Result<ExitCode, ServeError>
where
    Q: WorkQueue + 'static,
    S: FeatureStore + 'static,
    M: MessageStore + 'static,
    D: DeadLetters + 'static,
    R: WorkQueue,
    H: BatchHandler,
    C: StreamConsumer,
{
    let port = listener
        .local_addr()
        .map_or(args.port, |address| address.port());
    eprintln!(
        "referral local serve: listening on http://127.0.0.1:{port}/webhooks; \
         GET /features/{{email}}, /messages/{{email}}, /dead-letters (Ctrl-C to stop)"
    );
    eprintln!("referral local serve: page: http://127.0.0.1:{port}/");
    let activity = Arc::clone(&routes.activity);
    let (stop, stopped) = watch::channel(false);
    let http_loop = listener::serve(listener, routes.router(), args.limits(), stopped.clone());
    let sqs_loop = enricher_loop(
        queue,
        enricher,
        usize::from(args.batch_size),
        idle,
        (&activity, stopped.clone()),
    );
    let stream_loop = stream_loop(stream, idle, (&activity, stopped));
    let signal = async {
        let result = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
        result
    };
    let (signal, (), batches, records) = tokio::join!(signal, http_loop, sqs_loop, stream_loop);
    signal.map_err(ServeError::Signal)?;
    eprintln!(
        "referral local serve: stopped; {batches} enricher batches, {records} stream records"
    );
    Ok(ExitCode::SUCCESS)
}

/// The SQS event-source mapping over the queue without a give-up of its own (the queue
/// redrives to its dead-letter queue): reported failures come back after a doubling
/// backoff, sooner than the visibility timeout. Stops between batches, so no received
/// message is left in flight.
async fn enricher_loop<R: WorkQueue, H: BatchHandler>(
    queue: &R,
    enricher: &H,
    batch_size: usize,
    idle: Duration,
    (activity, stopped): (&Activity, watch::Receiver<bool>),
) -> u64 {
    let mapping = QueueMapping::assemble(
        queue,
        Enriching(enricher),
        QueueMappingSettings {
            batch_size,
            retry: Retry::Doubling {
                first: Duration::from_secs(1),
                max_doublings: 6,
            },
            ..QueueMappingSettings::default()
        },
    );
    let mut batches = 0;
    while !*stopped.borrow() {
        match mapping.poll_once().await {
            Ok(Some(polled)) => {
                batches += 1;
                if let Some(report) = &polled.output {
                    activity.enriched(report);
                }
            }
            Ok(None) => tokio::time::sleep(idle).await,
            Err(QueueMappingError::Receive(error)) => {
                tracing::warn!(error = %referral_domain::error_chain(&error), "receive failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                batches += 1;
                tracing::warn!(error = %referral_domain::error_chain(&error), "the messages come back after the queue's timeout, as duplicates where handled");
            }
        }
    }
    batches
}

/// The stream event-source mapping: poll the shards and deliver what they hold to the
/// orchestrator's handler, until stopped.
async fn stream_loop<C: StreamConsumer>(
    stream: &C,
    idle: Duration,
    (activity, stopped): (&Activity, watch::Receiver<bool>),
) -> u64 {
    let mut counters = StreamCounters::default();
    while !*stopped.borrow() {
        match stream.consume(100, &mut counters).await {
            Ok(0) => tokio::time::sleep(idle).await,
            Ok(_) => activity.orchestrated(counters),
            Err(error) => {
                tracing::warn!(error = %referral_domain::error_chain(&error), "stream poll failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    counters.records
}
