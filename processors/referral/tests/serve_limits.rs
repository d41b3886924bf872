//! `referral local serve` under hostile clients: a header over the cap, more connections
//! than the cap, a client that never finishes its headers, a body over the limit, and a
//! process out of file descriptors. Each is refused or waits, the log stays quiet, and the
//! server answers the next client.
// Helpers outside #[test] functions abort the test on a broken fixture, which is the point.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

mod common;
use common::serve;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use serve::Server;

/// The cap `local serve` puts on a request line and headers (`MAX_HEADER_BYTES`).
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The largest body the listener reads (`MAX_BODY_BYTES`).
const MAX_BODY_BYTES: usize = 1024 * 1024;

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// What came back on a connection: the status of an answer, or nothing (closed or reset).
fn status_of(stream: &mut TcpStream) -> Option<u16> {
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("no answer and no close: {error}"),
    }
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
}

fn still_answers(server: &Server) {
    assert_eq!(server.get("/dead-letters"), (200, json!([])));
}

#[test]
fn a_header_over_the_cap_is_refused() {
    let server = Server::start(&[]);
    // Four times the cap, well under hyper's own default buffer (about 400 KB): only the
    // listener's cap refuses it.
    let big = "a".repeat(4 * MAX_HEADER_BYTES);
    let mut stream = connect(server.port);
    let request = format!("GET /dead-letters HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before it has read everything: a failed write is a refusal too.
    let _ = stream.write_all(request.as_bytes());
    let status = status_of(&mut stream);
    assert!(
        matches!(status, None | Some(431)),
        "a {}-byte header got {status:?}",
        big.len()
    );

    // One endless header line: refused after a bounded read, quickly.
    let started = Instant::now();
    let mut stream = connect(server.port);
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0_usize;
    let _ = stream.write_all(b"GET /dead-letters HTTP/1.1\r\nX-Big: ");
    while sent < 512 * 1024 * 1024 && stream.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < 64 * 1024 * 1024,
        "the server read {sent} bytes of one header line"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    still_answers(&server);
}

#[test]
fn connections_over_the_cap_wait_for_a_free_slot() {
    let server = Server::start(&["--max-connections", "2"]);
    // Two clients that hold their connection: headers begun, never finished.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = connect(server.port);
            stream
                .write_all(b"GET /dead-letters HTTP/1.1\r\n")
                .expect("send");
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let mut third = connect(server.port);
    third
        .write_all(b"GET /dead-letters HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("send");
    third
        .set_read_timeout(Some(Duration::from_millis(800)))
        .expect("timeout");
    let mut byte = [0; 1];
    match third.read(&mut byte) {
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a connection over the cap was served at once: {other:?}"),
    }

    // A slot frees: the waiting client is served.
    drop(held.pop());
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut answer = Vec::new();
    third.read_to_end(&mut answer).expect("an answer");
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
    still_answers(&server);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_dropped() {
    let server = Server::start(&["--header-timeout-ms", "300"]);
    let mut stream = connect(server.port);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let started = Instant::now();
    stream
        .write_all(b"GET /dead-letters HTTP/1.1\r\n")
        .expect("send");
    // Slowloris: a header line every 100 ms, never the blank line.
    let dropped = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        if stream.write_all(b"X-Slow: 1\r\n").is_err() {
            break true;
        }
        let mut byte = [0; 64];
        match stream.read(&mut byte) {
            Ok(_) => break true,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break true,
        }
    };
    let took = started.elapsed();
    assert!(dropped, "a client still sending headers after {took:?}");
    assert!(took >= Duration::from_millis(250), "dropped after {took:?}");
    still_answers(&server);
}

#[test]
fn a_body_over_the_limit_gets_413_before_it_is_read() {
    let server = Server::start(&[]);
    let mut stream = connect(server.port);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let head = format!(
        "POST /webhooks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        8 * MAX_BODY_BYTES
    );
    stream.write_all(head.as_bytes()).expect("send");
    // No byte of the body is sent: the answer comes from the declared length alone.
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .expect("an answer within 5 s");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(&format!("\"max_bytes\":{MAX_BODY_BYTES}")),
        "{answer}"
    );
    still_answers(&server);
}

#[test]
fn out_of_file_descriptors_the_listener_pauses_instead_of_spinning() {
    // A shell lowers the descriptor limit, then becomes `referral local serve`; logs as
    // text lines on stdout.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 48 && exec \"$0\" local serve --port 0")
        .arg(env!("CARGO_BIN_EXE_referral"))
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_LAMBDA_LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start referral local serve");
    let failures = Arc::new(Mutex::new(0_usize));
    let counted = Arc::clone(&failures);
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("accept failed") {
                *counted.lock().unwrap() += 1;
            }
        }
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let port: u16 = loop {
        let line = lines
            .next()
            .expect("local serve announces its port")
            .expect("stderr");
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let server = Server {
        child,
        port,
        log: Arc::default(),
        stdout: Arc::default(),
    };

    // More idle connections than the server has descriptors left.
    let mut idle: Vec<TcpStream> = (0..80).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = *failures.lock().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let during = *failures.lock().unwrap() - before;
    assert!(before > 0, "the descriptors never ran out");
    assert!(
        during <= 4,
        "{during} accept failures logged in 3 s: the listener spins"
    );

    idle.clear();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = connect(port);
        let _ = stream.write_all(b"GET /dead-letters HTTP/1.1\r\nConnection: close\r\n\r\n");
        if status_of(&mut stream) == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "the server stopped answering");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(server);
}
