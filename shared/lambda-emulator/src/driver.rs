//! The runner's state machine: one function process at a time, fed one event at a time,
//! restarted when Lambda would start a new sandbox (after a timeout or a crash), measured
//! and stopped at the end.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::function::{
    FunctionSpec, InitFailure, Invocation, InvocationOutcome, InvokeError, Payload, RunStats,
};
use crate::ids;
use crate::runtime_api::{ApiRequest, FunctionError, NextInvocation, RuntimeApi};
use crate::usage::{self, Usage};

/// Delivers `events` to processes of `spec`'s binary started with `env`, over `api`.
pub(crate) async fn drive(
    spec: &FunctionSpec,
    env: &BTreeMap<String, String>,
    api: RuntimeApi,
    events: impl IntoIterator<Item = Vec<u8>>,
    on_invocation: &mut impl FnMut(&Invocation),
) -> Result<RunStats, InvokeError> {
    let region = env
        .get("AWS_REGION")
        .or_else(|| env.get("AWS_DEFAULT_REGION"))
        .map_or("us-east-1", String::as_str);
    let function_arn = format!(
        "arn:aws:lambda:{region}:{}:function:{}",
        ids::ACCOUNT,
        spec.function_name
    );
    let mut driver = Driver {
        spec,
        env,
        function_arn,
        api,
        process: None,
        parked: None,
        stats: RunStats::default(),
    };
    for body in events {
        let Some(invocation) = driver.invoke(body).await? else {
            break;
        };
        on_invocation(&invocation);
        driver.stats.invocations.push(invocation);
    }
    driver.finish().await?;
    Ok(driver.stats)
}

/// After the last answer, how long to wait for the runtime's next poll, so that what it does
/// after answering (log and metric lines) is finished and counted before it is stopped.
const IDLE_GRACE: Duration = Duration::from_secs(2);
/// How long a process that reported an init error may take to exit by itself.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// The function process of the moment.
#[derive(Debug)]
struct Process {
    child: Child,
    /// Kept from the start: `Child::id` forgets it once the process has been waited for.
    pid: Option<u32>,
    /// Connections numbered from here on are this process's.
    first_connection: u64,
    spawned: Instant,
    polled: bool,
}

/// What woke the runner.
enum Wake {
    /// The current process polls for an event.
    Next(oneshot::Sender<NextInvocation>),
    Request(ApiRequest),
    Exited {
        status: ExitStatus,
        polled: bool,
    },
    Deadline,
    NoProcess,
}

struct Driver<'a> {
    spec: &'a FunctionSpec,
    env: &'a BTreeMap<String, String>,
    function_arn: String,
    api: RuntimeApi,
    process: Option<Process>,
    /// A poll that came before there was an event for it.
    parked: Option<oneshot::Sender<NextInvocation>>,
    stats: RunStats,
}

impl Driver<'_> {
    /// Delivers one event; `None` when no process could initialise to take it.
    async fn invoke(&mut self, body: Vec<u8>) -> Result<Option<Invocation>, InvokeError> {
        let request_id = ids::request_id();
        let mut event = NextInvocation {
            request_id: request_id.clone(),
            deadline_ms: 0,
            function_arn: self.function_arn.clone(),
            trace_id: ids::trace_id(),
            body,
        };
        loop {
            let Some(reply) = self.await_poll().await? else {
                return Ok(None);
            };
            let started = Instant::now();
            event.deadline_ms = ids::epoch_ms().saturating_add(millis(self.spec.timeout));
            match reply.send(event) {
                Ok(()) => return self.await_outcome(request_id, started).await.map(Some),
                // The poll's connection went away first: the event waits for the next poll.
                Err(returned) => event = returned,
            }
        }
    }

    /// Waits for the current process (started if there is none) to ask for an event.
    async fn await_poll(&mut self) -> Result<Option<oneshot::Sender<NextInvocation>>, InvokeError> {
        let mut deadline = Instant::now() + self.spec.init_timeout;
        loop {
            if self.process.is_none() {
                self.start()?;
                deadline = Instant::now() + self.spec.init_timeout;
            }
            if let Some(reply) = self.parked.take().filter(|reply| !reply.is_closed()) {
                return Ok(Some(reply));
            }
            match self.wake(Some(deadline)).await? {
                Wake::Next(reply) => return Ok(Some(reply)),
                Wake::Request(ApiRequest::InitError { error }) => {
                    self.init_failed(error).await?;
                    return Ok(None);
                }
                // A late answer to an invocation that already timed out.
                Wake::Request(_) | Wake::NoProcess => {}
                Wake::Exited {
                    status,
                    polled: false,
                } => {
                    let error = exit_error(None, status);
                    self.stats.init_error = Some(InitFailure {
                        error,
                        exit_status: Some(status),
                    });
                    return Ok(None);
                }
                // Gone between invocations: a fresh process (in Lambda, a new sandbox) takes
                // the event, and must initialise in time.
                Wake::Exited { polled: true, .. } => {}
                Wake::Deadline => {
                    let polled = self.process.as_ref().is_some_and(|process| process.polled);
                    let status = self.stop().await?;
                    if !polled {
                        let error = FunctionError {
                            error_type: "Sandbox.Timedout".to_owned(),
                            message: format!(
                                "the function did not ask for an event within {:.2} seconds of starting",
                                self.spec.init_timeout.as_secs_f64()
                            ),
                        };
                        self.stats.init_error = Some(InitFailure {
                            error,
                            exit_status: status,
                        });
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Waits for the answer to `request_id`, handed out at `started`.
    async fn await_outcome(
        &mut self,
        request_id: String,
        started: Instant,
    ) -> Result<Invocation, InvokeError> {
        let deadline = started + self.spec.timeout;
        loop {
            let wake = self.wake(Some(deadline)).await?;
            let duration = started.elapsed();
            let outcome = match wake {
                Wake::Request(ApiRequest::Response {
                    request_id: id,
                    body,
                }) if id == request_id => InvocationOutcome::Response(Payload::from_body(body)),
                Wake::Request(ApiRequest::Error {
                    request_id: id,
                    error,
                }) if id == request_id => InvocationOutcome::Error(error),
                // Lambda takes no init error once the function runs: the invocation fails.
                Wake::Request(ApiRequest::InitError { error }) => InvocationOutcome::Error(error),
                // A runtime that polls before it answers (one with concurrent workers).
                Wake::Next(reply) => {
                    self.parked = Some(reply);
                    continue;
                }
                Wake::Request(_) => continue,
                Wake::Exited { status, .. } => {
                    InvocationOutcome::Error(exit_error(Some(&request_id), status))
                }
                Wake::NoProcess => InvocationOutcome::Error(FunctionError {
                    error_type: "Runtime.ExitError".to_owned(),
                    message: format!("RequestId: {request_id} Error: the runtime is gone"),
                }),
                Wake::Deadline => {
                    self.stop().await?;
                    InvocationOutcome::Timeout
                }
            };
            return Ok(Invocation {
                request_id,
                outcome,
                duration,
            });
        }
    }

    /// The next thing that happens to the current process, or `deadline`.
    async fn wake(&mut self, deadline: Option<Instant>) -> Result<Wake, InvokeError> {
        enum Raw {
            Request(Option<ApiRequest>),
            Exited(std::io::Result<ExitStatus>),
            Deadline,
        }
        loop {
            let Some(process) = self.process.as_mut() else {
                return Ok(Wake::NoProcess);
            };
            let until = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                    None => std::future::pending().await,
                }
            };
            // Requests first: an answer posted just before the process exited still counts.
            let raw = tokio::select! {
                biased;
                request = self.api.recv() => Raw::Request(request),
                status = process.child.wait() => Raw::Exited(status),
                () = until => Raw::Deadline,
            };
            return match raw {
                Raw::Request(None) => Err(InvokeError::ApiStopped),
                Raw::Request(Some(ApiRequest::Next { connection, reply })) => {
                    // A poll left over from a stopped process: dropping it closes it.
                    if connection < process.first_connection {
                        continue;
                    }
                    if !process.polled {
                        process.polled = true;
                        let cold_start = process.spawned.elapsed();
                        self.stats.spawn_to_first_poll.get_or_insert(cold_start);
                    }
                    Ok(Wake::Next(reply))
                }
                Raw::Request(Some(request)) => Ok(Wake::Request(request)),
                Raw::Exited(status) => {
                    let status = status.map_err(InvokeError::Wait)?;
                    let polled = process.polled;
                    self.process = None;
                    self.parked = None;
                    self.stats.exit_status = Some(status);
                    Ok(Wake::Exited { status, polled })
                }
                Raw::Deadline => Ok(Wake::Deadline),
            };
        }
    }

    fn start(&mut self) -> Result<(), InvokeError> {
        let first_connection = self.api.connections_accepted();
        let child = Command::new(&self.spec.binary)
            .env_clear()
            .envs(self.env)
            .stdin(Stdio::null())
            // The function's log lines, unchanged; stdout is kept for the responses.
            .stdout(std::io::stderr())
            .stderr(std::io::stderr())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| InvokeError::Spawn {
                binary: self.spec.binary.clone(),
                source,
            })?;
        self.parked = None;
        self.stats.processes_started += 1;
        self.process = Some(Process {
            pid: child.id(),
            child,
            first_connection,
            spawned: Instant::now(),
            polled: false,
        });
        Ok(())
    }

    /// Records an init error, letting the process exit by itself for a moment first so
    /// that its own exit status is the one reported.
    async fn init_failed(&mut self, error: FunctionError) -> Result<(), InvokeError> {
        let exited = match self.process.as_mut() {
            Some(process) => tokio::time::timeout(EXIT_GRACE, process.child.wait())
                .await
                .ok()
                .transpose()
                .map_err(InvokeError::Wait)?,
            None => None,
        };
        let exit_status = match exited {
            Some(status) => {
                self.process = None;
                self.stats.exit_status = Some(status);
                Some(status)
            }
            None => self.stop().await?,
        };
        self.stats.init_error = Some(InitFailure { error, exit_status });
        Ok(())
    }

    /// After the last event: lets the runtime come back for another, then measures and
    /// stops it.
    async fn finish(&mut self) -> Result<(), InvokeError> {
        if self.parked.is_none() {
            let grace = Instant::now() + IDLE_GRACE;
            while self.process.is_some() {
                match self.wake(Some(grace)).await? {
                    Wake::Next(reply) => {
                        self.parked = Some(reply);
                        break;
                    }
                    Wake::Request(_) => {}
                    Wake::Exited { .. } | Wake::Deadline | Wake::NoProcess => break,
                }
            }
        }
        self.stop().await?;
        Ok(())
    }

    /// Measures, kills and reaps the current process.
    async fn stop(&mut self) -> Result<Option<ExitStatus>, InvokeError> {
        let Some(mut process) = self.process.take() else {
            return Ok(None);
        };
        // Its waiting poll is answered (closed) only once it is dead: closed before, the
        // runtime would fail the poll and exit by itself, logging an error it never had.
        let parked = self.parked.take();
        if let Some(usage) = process.pid.and_then(usage::read) {
            self.record(usage);
        }
        // Fails only for a process that already exited; waiting reaps it all the same.
        let _ = process.child.start_kill();
        let status = process.child.wait().await.map_err(InvokeError::Wait)?;
        drop(parked);
        self.stats.exit_status = Some(status);
        Ok(Some(status))
    }

    fn record(&mut self, usage: Usage) {
        self.stats.cpu_user += usage.user;
        self.stats.cpu_system += usage.system;
        if let Some(kb) = usage.peak_rss_kb {
            let peak = self.stats.peak_rss_kb.get_or_insert(kb);
            *peak = (*peak).max(kb);
        }
    }
}

/// What Lambda reports for a runtime process that exited on its own.
fn exit_error(request_id: Option<&str>, status: ExitStatus) -> FunctionError {
    let status = match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    };
    let prefix = request_id.map_or(String::new(), |id| format!("RequestId: {id} "));
    FunctionError {
        error_type: "Runtime.ExitError".to_owned(),
        message: format!("{prefix}Error: Runtime exited with error: {status}"),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
