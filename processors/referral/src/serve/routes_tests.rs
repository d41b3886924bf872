#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use referral_domain::env::Vars;
use referral_domain::ports::{OutgoingMessage, WorkQueue};
use referral_ingest::config::{QUEUE_URL_VAR, SECRETS_VAR};
use referral_local::embedded::{
    EmbeddedFeatureStore, EmbeddedMessageStore, EmbeddedQueue, QueueRules,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;

type EmbeddedRoutes =
    Routes<Arc<EmbeddedQueue>, EmbeddedFeatureStore, EmbeddedMessageStore, Arc<EmbeddedQueue>>;

/// Routes over empty embedded stores, and the queue whose redrive fills the dead letters.
fn routes() -> (Arc<EmbeddedRoutes>, EmbeddedQueue) {
    let dead_letters = Arc::new(EmbeddedQueue::new());
    let redriving = EmbeddedQueue::with_rules(QueueRules {
        visibility_timeout: Duration::ZERO,
        max_receive_count: Some(1),
        dead_letters: Some(Arc::clone(&dead_letters)),
    });
    let config = referral_ingest::Config::from_vars(&Vars::new(|name: &str| match name {
        SECRETS_VAR => Some("whsec_routes_test".to_owned()),
        QUEUE_URL_VAR => Some("http://localhost/embedded/webhooks".to_owned()),
        _ => None,
    }))
    .unwrap();
    let routes = Routes {
        ingest: Deps {
            config,
            queue: Arc::new(EmbeddedQueue::new()),
            replays: Default::default(),
        },
        lookups: Lookups {
            features: EmbeddedFeatureStore::new(),
            messages: EmbeddedMessageStore::new(),
            dead_letters,
        },
        activity: Arc::default(),
    };
    (Arc::new(routes), redriving)
}

async fn get(routes: &Arc<EmbeddedRoutes>, path: &str) -> (u16, Value) {
    let request = axum::http::Request::builder()
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let Ok(answer) = Arc::clone(routes).router().oneshot(request).await;
    let status = answer.status().as_u16();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn dead_letters_list_what_the_queue_redrove_masked() {
    let (routes, queue) = routes();
    assert_eq!(get(&routes, "/dead-letters").await, (200, json!([])));

    let body = json!({"event_id": "evt-poison", "customer": {"email": "ann@example.com"}});
    queue
        .send(vec![OutgoingMessage {
            body: body.to_string(),
            attributes: BTreeMap::from([("source".to_owned(), "poison.json".to_owned())]),
        }])
        .await
        .unwrap();
    // Received once and never deleted: the next receive moves it, as SQS's redrive does.
    assert_eq!(queue.receive(10).await.unwrap().len(), 1);
    assert!(queue.receive(10).await.unwrap().is_empty());

    let (status, letters) = get(&routes, "/dead-letters").await;
    assert_eq!(status, 200);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["receive_count"], json!(1));
    assert_eq!(letters[0]["attributes"]["source"], json!("poison.json"));
    assert_eq!(letters[0]["body"]["event_id"], json!("evt-poison"));
    assert!(
        !letters[0].to_string().contains("ann@example.com"),
        "{}",
        letters[0]
    );
}

#[tokio::test]
async fn lookups_name_the_customer_by_address_encoded_or_not() {
    let (routes, _) = routes();
    let (status, answer) = get(&routes, "/features/Ann%40Example.com").await;
    assert_eq!(
        (status, answer),
        (404, json!({"error": "no features for that customer"}))
    );
    assert_eq!(
        get(&routes, "/messages/ann@example.com?x=1").await,
        (200, json!([]))
    );
    assert_eq!(get(&routes, "/features/no-at-sign").await.0, 400);
    assert_eq!(get(&routes, "/features/%ff@b.com").await.0, 400);
    assert_eq!(get(&routes, "/features").await.0, 404);
    assert_eq!(get(&routes, "/elsewhere").await.0, 404);
}

#[tokio::test]
async fn percent_decoding_keeps_what_is_not_an_escape() {
    let (routes, _) = routes();
    let unknown = (404, json!({"error": "no features for that customer"}));
    assert_eq!(get(&routes, "/features/a%40b.com").await, unknown);
    assert_eq!(
        get(&routes, "/features/%ff@b.com").await,
        (
            400,
            json!({"error": "the e-mail address in the path is not valid UTF-8"})
        )
    );
}

#[tokio::test]
async fn other_methods_reach_the_ingest_handler() {
    let (routes, _) = routes();
    for (method, path) in [("POST", "/features/a@b.com"), ("PUT", "/webhooks")] {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let Ok(answer) = Arc::clone(&routes).router().oneshot(request).await;
        // The ingest handler's own answers: 405 for anything but POST, 415 for no JSON.
        let expected = if method == "POST" { 415 } else { 405 };
        assert_eq!(answer.status().as_u16(), expected, "{method} {path}");
    }
}

async fn send(routes: &Arc<EmbeddedRoutes>, method: &str, path: &str) -> Response {
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(REPLAY_HEADER, "test")
        .header("host", "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap();
    let Ok(answer) = Arc::clone(routes).router().oneshot(request).await;
    answer
}

#[tokio::test]
async fn the_page_is_one_file_that_names_no_other_origin() {
    let (routes, _) = routes();
    let answer = send(&routes, "GET", "/").await;
    assert_eq!(answer.status().as_u16(), 200);
    let header = |name| {
        answer
            .headers()
            .get(name)
            .and_then(|value: &axum::http::HeaderValue| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").starts_with("text/html"));
    let policy = header("content-security-policy");
    for directive in [
        "default-src 'none'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("http"), "{policy}");
    let page = answer.into_body().collect().await.unwrap().to_bytes();
    let page = String::from_utf8(page.to_vec()).unwrap();
    // Nothing loaded from elsewhere: no URL, no external script, style sheet or font.
    for outside in ["http:", "https:", "//", "<link", "src=", "@import", "url("] {
        let found = page
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .any(|line| line.contains(outside));
        assert!(!found, "the page refers to {outside}");
    }
    for endpoint in ["/counters", "/webhooks", "/customers", "/dead-letters"] {
        assert!(page.contains(&format!("\"{endpoint}\"")), "{endpoint}");
        assert_eq!(get(&routes, endpoint).await.0, 200, "{endpoint}");
    }
}

#[tokio::test]
async fn replay_sends_a_dead_letter_back_to_the_webhook_queue() {
    let (routes, queue) = routes();
    let body = json!({"event_id": "evt-replayed", "customer": {"email": "ann@example.com"}});
    queue
        .send(vec![OutgoingMessage {
            body: body.to_string(),
            attributes: BTreeMap::from([("error_kind".to_owned(), "rejected".to_owned())]),
        }])
        .await
        .unwrap();
    assert_eq!(queue.receive(10).await.unwrap().len(), 1);
    assert!(queue.receive(10).await.unwrap().is_empty());
    let (_, letters) = get(&routes, "/dead-letters").await;
    let message_id = letters[0]["message_id"].as_str().unwrap().to_owned();

    let path = format!("/dead-letters/{message_id}/replay");
    // Without the page's header, as a form on another site would post: refused.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(&path)
        .body(Body::empty())
        .unwrap();
    let Ok(refused) = Arc::clone(&routes).router().oneshot(request).await;
    assert_eq!(refused.status().as_u16(), 403);
    // With it, from a name rebound to this address: refused too.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(&path)
        .header(REPLAY_HEADER, "page")
        .header("host", "attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    let Ok(refused) = Arc::clone(&routes).router().oneshot(request).await;
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(get(&routes, "/dead-letters").await.0, 200);
    assert!(routes.ingest.queue.receive(10).await.unwrap().is_empty());
    let answer = send(&routes, "POST", &path).await;
    assert_eq!(answer.status().as_u16(), 202);
    assert_eq!(get(&routes, "/dead-letters").await, (200, json!([])));
    let resent = routes.ingest.queue.receive(10).await.unwrap();
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!(resent[0].body, body.to_string());
    assert_eq!(resent[0].attributes["error_kind"], "rejected");

    // Replayed already, or never there: not found, and nothing sent.
    assert_eq!(send(&routes, "POST", &path).await.status().as_u16(), 404);
    assert_eq!(send(&routes, "GET", &path).await.status().as_u16(), 404);
    assert!(routes.ingest.queue.receive(10).await.unwrap().is_empty());
}

#[test]
fn loopback_hosts_are_recognised_with_or_without_a_port() {
    for host in [
        "127.0.0.1",
        "127.0.0.1:8080",
        "localhost:1",
        "LOCALHOST",
        "[::1]:8080",
        "[::1]",
    ] {
        assert!(is_loopback_host(host), "{host}");
    }
    for host in [
        "",
        ":8080",
        "example.com",
        "127.0.0.1.nip.io:8080",
        "localhost.evil:80",
        "[::2]:80",
    ] {
        assert!(!is_loopback_host(host), "{host}");
    }
}
