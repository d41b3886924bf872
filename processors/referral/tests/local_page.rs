//! The page of `referral local serve`, in a real browser: Debian's Chromium, headless, loads
//! `GET /` after a few webhooks went through the embedded pipeline, runs its script, and
//! the DOM it dumps holds the counters, the webhooks, the customer (address masked, never in
//! clear), the message and the dead letter with its replay button. The button's endpoint
//! then replays the letter. With no browser the test fails, saying how to install one.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::serve;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use referral_tests::event_body;
use serde_json::{Value, json};
use serve::Server;

/// Overrides the browser looked up on `PATH`.
const BROWSER_VAR: &str = "REFERRAL_BROWSER";
const BROWSER: &str = "chromium";
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
const DAY: i64 = 24 * 60;

fn browser() -> PathBuf {
    if let Some(path) = std::env::var_os(BROWSER_VAR) {
        return PathBuf::from(path);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(BROWSER))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the page is tested in a real browser and `{BROWSER}` is not on PATH: \
                 install it with `apt-get install -y chromium` (Debian), or set \
                 {BROWSER_VAR} to a Chromium binary"
            )
        })
}

/// The DOM after the page's script ran, as headless Chromium dumps it.
fn rendered_dom(url: &str) -> String {
    let profile = std::env::temp_dir().join(format!("referral-page-{}", std::process::id()));
    let mut child = Command::new(browser())
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .env("HOME", &profile)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start the browser: {error}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let dom = std::thread::spawn(move || {
        let mut dom = String::new();
        stdout.read_to_string(&mut dom).map(|_| dom)
    });
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        let _ = stderr.read_to_string(&mut log);
        log
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the browser") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the browser did not finish in {BROWSER_TIMEOUT:?}: {}",
                log.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let dom = dom.join().expect("reader").expect("read the DOM");
    let log = log.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "the browser exited with {status}: {log}");
    assert!(
        dom.contains("</html>"),
        "no DOM from the browser: {dom}\n{log}"
    );
    dom
}

/// The text of the first element whose opening tag carries `attribute`.
fn text_of<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let at = dom
        .find(attribute)
        .unwrap_or_else(|| panic!("no element with {attribute} in the DOM:\n{dom}"));
    let rest = &dom[at..];
    let start = rest.find('>').expect("the tag ends") + 1;
    let end = rest[start..].find('<').expect("the text ends") + start;
    &rest[start..end]
}

/// The table row whose opening tag carries `attribute`, up to its end.
fn row_of<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let at = dom
        .find(attribute)
        .unwrap_or_else(|| panic!("no row with {attribute} in the DOM:\n{dom}"));
    let end = dom[at..].find("</tr>").expect("the row ends") + at;
    &dom[at..end]
}

fn wait_for(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = server.get(path);
        if status == 200 && done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "GET {path} still answers {status} {body}; server log:\n{}",
            server.log.lock().map(|log| log.clone()).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn webhook(event_id: &str, customer: &str, minute: i64, score: f64) -> Value {
    let mut body = event_body(event_id, customer, minute, Some(score));
    body["property_info"]["square_feet"] = json!(2000);
    body
}

#[test]
fn the_page_shows_the_pipeline_in_a_browser_with_addresses_masked() {
    let browser = browser();
    let server = Server::start(&[]);
    let page = format!("http://127.0.0.1:{}/", server.port);
    // Printed right after the port, which is what `start` waited for.
    let started = Instant::now();
    loop {
        let log = server.log.lock().map(|log| log.clone()).unwrap_or_default();
        if log.contains(&format!("page: {page}")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no page URL: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let customer = "Pat.Lee@Example.com";
    let clear = "pat.lee@example.com";
    let first = webhook("page-1", customer, DAY * 5, 4.5);
    assert_eq!(server.post_signed(&first.to_string()).0, 202);
    let mut invalid = event_body("page-bad", "kim.ray@example.com", 1, Some(9.0));
    invalid["service"]["satisfaction_score"] = json!(9.0);
    assert_eq!(server.post_signed(&invalid.to_string()).0, 400);
    // The same id with other content: refused by the enricher, dead-lettered.
    let conflicting = webhook("page-1", customer, DAY * 6, 1.0);
    assert_eq!(server.post_signed(&conflicting.to_string()).0, 202);
    let letters = wait_for(&server, "/dead-letters", |letters| {
        letters.as_array().is_some_and(|list| list.len() == 1)
    });
    let letter_id = letters[0]["message_id"].as_str().unwrap().to_owned();
    wait_for(&server, "/customers", |customers| {
        customers[0]["messages"]
            .as_array()
            .is_some_and(|list| list.len() == 1)
    });

    // The counters are updated once a batch's handling returns, just after its writes.
    wait_for(&server, "/counters", |counters| {
        counters["enricher"]["messages"] == json!(2)
            && counters["orchestrator"]["created"] == json!(1)
    });

    let dom = rendered_dom(&page);
    println!("{browser:?} rendered {} bytes of DOM", dom.len());
    assert!(
        text_of(&dom, r#"id="status""#).starts_with("updated "),
        "the page could not load its data:\n{dom}"
    );
    assert_eq!(text_of(&dom, r#"data-counter="ingest.2xx""#), "2", "{dom}");
    assert_eq!(text_of(&dom, r#"data-counter="ingest.4xx""#), "1", "{dom}");
    assert_eq!(text_of(&dom, r#"data-counter="enricher.applied""#), "1");
    assert_eq!(
        text_of(&dom, r#"data-counter="enricher.conflicting_duplicate""#),
        "1"
    );
    assert_eq!(text_of(&dom, r#"data-counter="orchestrator.created""#), "1");
    assert!(
        dom.contains(">invalid_event: service.satisfaction_score<"),
        "the refused webhook and its field:\n{dom}"
    );
    let webhooks =
        &dom[dom.find(r#"id="webhooks""#).unwrap()..dom.find(r#"id="customers""#).unwrap()];
    assert!(
        webhooks.contains(">applied<"),
        "the first one's outcome:\n{webhooks}"
    );
    assert!(
        webhooks.contains(">conflicting_duplicate<"),
        "the second's:\n{webhooks}"
    );
    assert!(!webhooks.contains(">pending<"), "{webhooks}");

    let customer_row = row_of(&dom, r#"data-customer="p***@example.com""#);
    assert!(customer_row.contains("service_count: 1"), "{customer_row}");
    assert!(
        !dom.to_lowercase().contains(clear),
        "the page shows an address in clear:\n{dom}"
    );

    let (_, messages) = server.get(&format!("/messages/{clear}"));
    let message_id = messages[0]["message_id"].as_str().unwrap();
    let message_row = row_of(&dom, &format!(r#"data-message-id="{message_id}""#));
    assert!(
        message_row.contains(">template<"),
        "generator: {message_row}"
    );
    // The trace ingest started for the webhook, as the message record carries it.
    let trace_id = messages[0]["trace_id"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32, "{messages}");
    assert!(
        message_row.contains(&format!(r#"<td class="trace">{trace_id}</td>"#)),
        "trace id column: {message_row}"
    );
    assert!(message_row.contains(">p***@example.com<"), "{message_row}");
    // The prompt, rebuilt from the features it was written from (its hash says so).
    assert!(
        message_row.contains("&lt;customer_data&gt;") && message_row.contains("Test Customer"),
        "prompt: {message_row}"
    );

    let letter_row = row_of(&dom, &format!(r#"data-message-id="{letter_id}""#));
    assert!(
        letter_row.contains(">conflicting_duplicate<"),
        "{letter_row}"
    );
    assert!(letter_row.contains(">event_id<"), "field: {letter_row}");
    assert!(letter_row.contains(r#"class="replay""#), "{letter_row}");

    // What the button posts: the letter goes back to the webhook queue, is refused again
    // (its content still conflicts) and comes back as a new letter.
    let replay = format!("/dead-letters/{letter_id}/replay");
    assert!(
        dom.contains(r#""X-Referral-Replay": "page""#),
        "the button's header"
    );
    assert_eq!(
        server.post(&replay, &[]).0,
        403,
        "a replay without the header"
    );
    let (status, answer) = server.post(&replay, &[("X-Referral-Replay", "page")]);
    assert_eq!(status, 202, "{answer}");
    let counters = wait_for(&server, "/counters", |counters| {
        counters["enricher"]["conflicting_duplicate"] == json!(2)
    });
    assert_eq!(counters["enricher"]["applied"], json!(1), "{counters}");
    let letters = wait_for(&server, "/dead-letters", |letters| {
        letters.as_array().is_some_and(|list| list.len() == 1)
    });
    assert_ne!(letters[0]["message_id"], json!(letter_id), "{letters}");
    assert_eq!(
        server.post(&replay, &[("X-Referral-Replay", "page")]).0,
        404
    );

    // Once the features move on, the first message's prompt can no longer be rebuilt: the
    // page says so rather than show another prompt.
    let later = webhook("page-2", customer, DAY * 40, 4.8);
    assert_eq!(server.post_signed(&later.to_string()).0, 202);
    let customers = wait_for(&server, "/customers", |customers| {
        customers[0]["features"]["service_count"] == json!(2)
    });
    let messages = customers[0]["messages"].as_array().unwrap();
    assert_eq!(messages[0]["prompt"], Value::Null, "{customers}");
    assert!(
        messages[0]["prompt_hash"]
            .as_str()
            .is_some_and(|hash| !hash.is_empty()),
        "{customers}"
    );
}
