//! `WorkQueue`: SQS's rules. Any number of messages sent (the adapter cuts SQS's batches),
//! at most ten per receive, bodies and attributes as sent; a received message hidden for
//! the visibility timeout and back with its receive count raised unless deleted; made
//! visible at once on request; moved to the dead-letter queue once received the maximum
//! number of times; a message over 256 KiB refused for good.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use referral_domain::ports::{OutgoingMessage, QueueMessage, WorkQueue};

/// How the queue under test was set up: both queues fresh and empty.
#[derive(Debug, Clone, Copy)]
pub struct QueueSetup {
    pub visibility_timeout: Duration,
    pub max_receive_count: u32,
}

async fn receive<Q: WorkQueue>(queue: &Q, max: usize) -> Vec<QueueMessage> {
    let received = queue
        .receive(max)
        .await
        .unwrap_or_else(|error| panic!("receive: {error}"));
    assert!(received.len() <= 10, "a receive hands out at most ten");
    received
}

/// Receives until the queue has nothing visible.
async fn receive_all<Q: WorkQueue>(queue: &Q) -> Vec<QueueMessage> {
    let mut all = Vec::new();
    loop {
        let batch = receive(queue, 10).await;
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

async fn delete<Q: WorkQueue>(queue: &Q, messages: &[QueueMessage]) {
    let receipts: Vec<String> = messages.iter().map(|m| m.receipt.clone()).collect();
    queue
        .delete(&receipts)
        .await
        .unwrap_or_else(|error| panic!("delete: {error}"));
}

fn outgoing(tag: &str, index: usize) -> OutgoingMessage {
    OutgoingMessage {
        body: format!("{{\"tag\":\"{tag}\",\"index\":{index}}}"),
        attributes: BTreeMap::from([
            ("event_id".to_owned(), format!("{tag}-{index}")),
            ("source".to_owned(), "contract".to_owned()),
        ]),
    }
}

async fn wait_out(setup: QueueSetup) {
    tokio::time::sleep(setup.visibility_timeout + Duration::from_millis(300)).await;
}

/// Runs every case against `queue`, whose redrive policy names `dead_letters`.
pub async fn work_queue_contract<Q: WorkQueue>(queue: &Q, dead_letters: &Q, setup: QueueSetup) {
    everything_sent_is_received_once_as_sent(queue).await;
    a_held_message_is_hidden_then_comes_back_counted(queue, setup).await;
    a_retry_after_a_delay_waits_for_it(queue).await;
    a_message_received_too_often_moves_to_the_dead_letter_queue(queue, dead_letters, setup).await;
    an_oversized_message_is_refused_for_good(queue).await;
}

async fn everything_sent_is_received_once_as_sent<Q: WorkQueue>(queue: &Q) {
    let sent: Vec<OutgoingMessage> = (0..25).map(|index| outgoing("bulk", index)).collect();
    queue
        .send(sent.clone())
        .await
        .unwrap_or_else(|error| panic!("send 25: {error}"));
    let received = receive_all(queue).await;
    assert_eq!(received.len(), 25, "every message, once");
    let ids: BTreeSet<&str> = received.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 25, "distinct message ids");
    let mut bodies: Vec<(&str, &BTreeMap<String, String>)> = received
        .iter()
        .map(|m| (m.body.as_str(), &m.attributes))
        .collect();
    bodies.sort();
    let mut expected: Vec<(&str, &BTreeMap<String, String>)> = sent
        .iter()
        .map(|m| (m.body.as_str(), &m.attributes))
        .collect();
    expected.sort();
    assert_eq!(bodies, expected, "bodies and attributes as sent");
    assert!(received.iter().all(|m| m.receive_count == 1));
    delete(queue, &received).await;
}

async fn a_held_message_is_hidden_then_comes_back_counted<Q: WorkQueue>(
    queue: &Q,
    setup: QueueSetup,
) {
    queue
        .send(vec![outgoing("held", 0), outgoing("held", 1)])
        .await
        .unwrap_or_else(|error| panic!("send: {error}"));
    let first = receive_all(queue).await;
    assert_eq!(first.len(), 2);
    assert!(
        receive(queue, 10).await.is_empty(),
        "a received message is hidden"
    );
    // One back at once on request, with a fresh receipt and its count raised.
    let (retried, kept) = (&first[0], &first[1]);
    queue
        .retry_later(std::slice::from_ref(&retried.receipt), Duration::ZERO)
        .await
        .unwrap_or_else(|error| panic!("retry_later: {error}"));
    let again = receive_all(queue).await;
    assert_eq!(again.len(), 1, "only the released one is visible");
    assert_eq!(again[0].message_id, retried.message_id);
    assert_eq!(again[0].receive_count, 2);
    assert_ne!(
        again[0].receipt, retried.receipt,
        "each receive has its receipt"
    );
    delete(queue, &again).await;
    // The other one, never deleted, comes back by itself after the visibility timeout.
    wait_out(setup).await;
    let returned = receive_all(queue).await;
    assert_eq!(returned.len(), 1);
    assert_eq!(returned[0].message_id, kept.message_id);
    assert_eq!(returned[0].receive_count, 2);
    delete(queue, &returned).await;
    wait_out(setup).await;
    assert!(
        receive_all(queue).await.is_empty(),
        "a deleted message never comes back"
    );
}

async fn a_retry_after_a_delay_waits_for_it<Q: WorkQueue>(queue: &Q) {
    queue
        .send(vec![outgoing("delayed", 0)])
        .await
        .unwrap_or_else(|error| panic!("send: {error}"));
    let received = receive_all(queue).await;
    assert_eq!(received.len(), 1);
    queue
        .retry_later(
            std::slice::from_ref(&received[0].receipt),
            Duration::from_secs(1),
        )
        .await
        .unwrap_or_else(|error| panic!("retry_later: {error}"));
    assert!(
        receive_all(queue).await.is_empty(),
        "a delayed retry waits for its delay"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let again = receive_all(queue).await;
    assert_eq!(again.len(), 1, "and then comes back");
    assert_eq!(again[0].receive_count, 2);
    delete(queue, &again).await;
}

async fn a_message_received_too_often_moves_to_the_dead_letter_queue<Q: WorkQueue>(
    queue: &Q,
    dead_letters: &Q,
    setup: QueueSetup,
) {
    let poison = outgoing("poison", 0);
    queue
        .send(vec![poison.clone()])
        .await
        .unwrap_or_else(|error| panic!("send: {error}"));
    let mut id = None;
    for delivery in 1..=setup.max_receive_count {
        let received = receive_all(queue).await;
        assert_eq!(received.len(), 1, "delivery {delivery}");
        assert_eq!(received[0].receive_count, delivery);
        id = Some(received[0].message_id.clone());
        queue
            .retry_later(std::slice::from_ref(&received[0].receipt), Duration::ZERO)
            .await
            .unwrap_or_else(|error| panic!("retry_later: {error}"));
    }
    assert!(
        receive_all(queue).await.is_empty(),
        "past the maximum receive count the message leaves the queue"
    );
    let moved = receive_all(dead_letters).await;
    assert_eq!(moved.len(), 1, "and is in the dead-letter queue");
    assert_eq!(Some(&moved[0].message_id), id.as_ref());
    assert_eq!(
        (&moved[0].body, &moved[0].attributes),
        (&poison.body, &poison.attributes)
    );
    delete(dead_letters, &moved).await;
}

async fn an_oversized_message_is_refused_for_good<Q: WorkQueue>(queue: &Q) {
    let oversized = OutgoingMessage {
        body: "x".repeat(262_145),
        attributes: BTreeMap::new(),
    };
    match queue.send(vec![oversized]).await {
        Err(error) => assert!(!error.is_transient(), "{error}"),
        Ok(()) => panic!("a message over 256 KiB was accepted"),
    }
    // Many messages that fit one by one but not in one SQS batch go through.
    let large: Vec<OutgoingMessage> = (0..10)
        .map(|index| OutgoingMessage {
            body: format!("{index}{}", "y".repeat(100_000)),
            attributes: BTreeMap::new(),
        })
        .collect();
    queue
        .send(large)
        .await
        .unwrap_or_else(|error| panic!("ten messages of 100 KB: {error}"));
    let received = receive_all(queue).await;
    assert_eq!(received.len(), 10);
    delete(queue, &received).await;
}
