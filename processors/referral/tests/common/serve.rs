//! A `referral local serve` process for a test: started on a free port (it prints the port
//! it got), spoken to over plain HTTP/1.1, killed when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub const SECRET: &str = "whsec_end_to_end_test_secret";

/// `referral` with nothing that could aim it at an AWS account.
pub fn referral() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_referral"));
    command
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Everything the server wrote to stderr so far, for failure messages.
    pub log: Arc<Mutex<String>>,
    /// Everything it wrote to stdout so far: its JSON log lines.
    pub stdout: Arc<Mutex<String>>,
}

impl Server {
    /// `referral local serve --port 0 ARGS`, once it listens.
    pub fn start(args: &[&str]) -> Server {
        let mut child = referral()
            .args(["local", "serve", "--port", "0"])
            .args(args)
            .env("WEBHOOK_SECRETS", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start referral local serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let stdout = Arc::new(Mutex::new(String::new()));
        let lines = child.stdout.take().expect("piped stdout");
        let written = Arc::clone(&stdout);
        // Read as it comes, so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(lines).lines().map_while(Result::ok) {
                if let Ok(mut stdout) = written.lock() {
                    stdout.push_str(&line);
                    stdout.push('\n');
                }
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let (port_found, port_announced) = mpsc::channel();
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = announced_port(&line) {
                    let _ = port_found.send(port);
                }
                if let Ok(mut log) = kept.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let port = port_announced
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "local serve did not announce its port: {}",
                    log.lock().map(|l| l.clone()).unwrap_or_default()
                )
            });
        Server {
            child,
            port,
            log,
            stdout,
        }
    }

    /// The JSON lines of the server's log so far (others, such as EMF's, included).
    pub fn log_lines(&self) -> Vec<Value> {
        let stdout = self
            .stdout
            .lock()
            .map(|text| text.clone())
            .unwrap_or_default();
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks", self.port)
    }

    /// `GET path`: the status and the JSON body.
    pub fn get(&self, path: &str) -> (u16, Value) {
        let (status, body) = self.exchange("GET", path, &[], "");
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|error| panic!("GET {path} answered non-JSON ({error}): {body}"));
        (status, json)
    }

    /// `POST /webhooks` signed with [`SECRET`]: the status and the body.
    pub fn post_signed(&self, body: &str) -> (u16, String) {
        self.post_signed_with(body, &[])
    }

    /// [`Self::post_signed`] with more headers (a `traceparent`, say).
    pub fn post_signed_with(&self, body: &str, extra: &[(&str, &str)]) -> (u16, String) {
        let signature =
            referral_ingest::sign(SECRET, chrono::Utc::now().timestamp(), body.as_bytes());
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Signature", signature.as_str()),
        ];
        headers.extend_from_slice(extra);
        self.exchange("POST", "/webhooks", &headers, body)
    }

    /// `POST /webhooks` with no signature.
    pub fn post_unsigned(&self, body: &str) -> (u16, String) {
        self.exchange(
            "POST",
            "/webhooks",
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// `POST path` with no body and `headers`: the status and the body.
    pub fn post(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        self.exchange("POST", path, headers, "")
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        stream
            .write_all(request.as_bytes())
            .expect("send the request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read the answer");
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {answer}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Ctrl-C, and the exit status once it stopped.
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "cannot signal local serve");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "local serve did not stop after Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn announced_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on http://127.0.0.1:").nth(1)?;
    rest.split('/').next()?.parse().ok()
}
