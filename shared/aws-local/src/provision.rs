//! Creating what a local run needs, the way the SAM template creates it in an account: the
//! queue with its dead-letter queue (redrive policy) and the three tables (`CustomerFeatures`
//! with its stream, its event archive, `ReferralMessages` with TTL on abandoned claims) and
//! the backfill bucket. For `referral local setup`,
//! `run --endpoint-url` and the tests; nothing deployed links this.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use referral_aws::dynamo::{BUCKET_KEY, CLAIM_TTL_ATTRIBUTE, CUSTOMER_KEY, MESSAGE_KEY};
use referral_aws::error::{adapter_error, corrupt};
use referral_domain::ports::AdapterError;

/// Table names of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub features: String,
    pub archive: String,
    pub messages: String,
}

/// Creates the tables if they do not exist: `CustomerFeatures` with its stream on
/// (NEW_IMAGE), its event archive (`customerEmail` + numeric `bucket`), `ReferralMessages`
/// with TTL on abandoned claims. On-demand billing.
/// Returns the features table's stream ARN.
pub async fn ensure_tables(
    client: &aws_sdk_dynamodb::Client,
    names: &TableNames,
) -> Result<String, AdapterError> {
    let typed_key = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .map_err(|error| corrupt("CreateTable", error))
    };
    let string_key = |name: &str| typed_key(name, ScalarAttributeType::S);
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|error| corrupt("CreateTable", error))
    };

    if describe(client, &names.features).await?.is_none() {
        let stream = StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(StreamViewType::NewImage)
            .build()
            .map_err(|error| corrupt("CreateTable", error))?;
        create(
            client
                .create_table()
                .table_name(&names.features)
                .attribute_definitions(string_key(CUSTOMER_KEY)?)
                .key_schema(key(CUSTOMER_KEY, KeyType::Hash)?)
                .billing_mode(BillingMode::PayPerRequest)
                .stream_specification(stream),
        )
        .await?;
    }
    if describe(client, &names.archive).await?.is_none() {
        create(
            client
                .create_table()
                .table_name(&names.archive)
                .attribute_definitions(string_key(CUSTOMER_KEY)?)
                .attribute_definitions(typed_key(BUCKET_KEY, ScalarAttributeType::N)?)
                .key_schema(key(CUSTOMER_KEY, KeyType::Hash)?)
                .key_schema(key(BUCKET_KEY, KeyType::Range)?)
                .billing_mode(BillingMode::PayPerRequest),
        )
        .await?;
    }
    if describe(client, &names.messages).await?.is_none() {
        create(
            client
                .create_table()
                .table_name(&names.messages)
                .attribute_definitions(string_key(CUSTOMER_KEY)?)
                .attribute_definitions(string_key(MESSAGE_KEY)?)
                .key_schema(key(CUSTOMER_KEY, KeyType::Hash)?)
                .key_schema(key(MESSAGE_KEY, KeyType::Range)?)
                .billing_mode(BillingMode::PayPerRequest),
        )
        .await?;
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(CLAIM_TTL_ATTRIBUTE)
            .build()
            .map_err(|error| corrupt("UpdateTimeToLive", error))?;
        client
            .update_time_to_live()
            .table_name(&names.messages)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|error| adapter_error("UpdateTimeToLive", error))?;
    }
    describe(client, &names.features)
        .await?
        .filter(|arn| !arn.is_empty())
        .ok_or_else(|| {
            corrupt(
                "DescribeTable",
                format!(
                    "table {} has no stream: enable its stream (NEW_IMAGE)",
                    names.features
                ),
            )
        })
}

/// The latest stream ARN of a table, or `None` when the table does not exist.
async fn describe(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<String>, AdapterError> {
    match client.describe_table().table_name(table).send().await {
        Ok(output) => Ok(Some(
            output
                .table
                .and_then(|table| table.latest_stream_arn)
                .unwrap_or_default(),
        )),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|service| service.is_resource_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(adapter_error("DescribeTable", error)),
    }
}

async fn create(
    request: aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder,
) -> Result<(), AdapterError> {
    match request.send().await {
        Ok(_) => Ok(()),
        // Created meanwhile by another process: that is what we wanted.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|service| service.is_resource_in_use_exception()) =>
        {
            Ok(())
        }
        Err(error) => Err(adapter_error("CreateTable", error)),
    }
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
    pub dlq_arn: String,
}

/// Settings of a queue with a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    pub dlq_name: String,
    /// Deliveries before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
    pub visibility_timeout_seconds: u32,
}

/// Creates the queue and its DLQ if absent (CreateQueue is idempotent for equal
/// attributes) and sets the redrive policy. Returns both URLs and ARNs.
pub async fn ensure_queue_pair(
    client: &aws_sdk_sqs::Client,
    spec: &QueueSpec,
) -> Result<QueuePair, AdapterError> {
    let dlq_url = create_queue(client, &spec.dlq_name, &[]).await?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": spec.max_receive_count.to_string(),
    })
    .to_string();
    let url = create_queue(
        client,
        &spec.name,
        &[(
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout_seconds.to_string(),
        )],
    )
    .await?;
    client
        .set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout_seconds.to_string(),
        )
        .send()
        .await
        .map_err(|error| adapter_error("SetQueueAttributes", error))?;
    let arn = queue_arn(client, &url).await?;
    Ok(QueuePair {
        url,
        arn,
        dlq_url,
        dlq_arn,
    })
}

/// Creates a queue with the default settings if absent; returns its URL.
pub async fn ensure_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
) -> Result<String, AdapterError> {
    create_queue(client, name, &[]).await
}

async fn create_queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(QueueAttributeName, String)],
) -> Result<String, AdapterError> {
    let mut request = client.create_queue().queue_name(name);
    for (attribute, value) in attributes {
        request = request.attributes(attribute.clone(), value);
    }
    match request.send().await {
        Ok(output) => output
            .queue_url
            .ok_or_else(|| corrupt("CreateQueue", "no queue URL in the answer")),
        // Exists with other attributes: use it as it is; the caller sets what it needs.
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|service| service.is_queue_name_exists()) =>
        {
            queue_url(client, name).await
        }
        Err(error) => Err(adapter_error("CreateQueue", error)),
    }
}

/// Resolves a queue given by name or URL to its URL.
pub async fn queue_url(
    client: &aws_sdk_sqs::Client,
    name_or_url: &str,
) -> Result<String, AdapterError> {
    if name_or_url.starts_with("https://") || name_or_url.starts_with("http://") {
        return Ok(name_or_url.to_owned());
    }
    client
        .get_queue_url()
        .queue_name(name_or_url)
        .send()
        .await
        .map_err(|error| adapter_error("GetQueueUrl", error))?
        .queue_url
        .ok_or_else(|| corrupt("GetQueueUrl", "no queue URL in the answer"))
}

/// The ARN of a queue.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, AdapterError> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|error| adapter_error("GetQueueAttributes", error))?
        .attributes
        .and_then(|mut attributes| attributes.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| corrupt("GetQueueAttributes", "no QueueArn in the answer"))
}

/// The bucket `referral backfill --to s3://…` writes the partitions to, as the template's
/// `BackfillBucket` (created if missing; one that exists is used as it is).
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, name: &str) -> Result<(), AdapterError> {
    match client.create_bucket().bucket(name).send().await {
        Ok(_) => Ok(()),
        Err(error)
            if error.as_service_error().is_some_and(|service| {
                service.is_bucket_already_owned_by_you() || service.is_bucket_already_exists()
            }) =>
        {
            Ok(())
        }
        Err(error) => Err(adapter_error("CreateBucket", error)),
    }
}
