//! The listener of `local serve`: axum's routes on hyper's HTTP/1 server, with limits from
//! hyper's settings so that no client (a slow one, a huge header, a flood of connections,
//! a process out of file descriptors) can take the process down or make it spin.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Connections served at once by default. A development loop needs a handful; `local send`
/// uses 16 by default.
pub const MAX_CONNECTIONS: usize = 256;
/// Request line and headers at most (hyper answers 431 past it). hyper's own cap of 100
/// header fields applies too.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper's read buffer at most, so a connection holds a bounded amount of memory.
const MAX_BUFFER_BYTES: usize = 64 * 1024;
/// How long a client has to send a request's headers by default.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may last, request, body and answer together.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the listener pauses after a failed accept. Out of file descriptors, accept
/// fails at once each time: without a pause the loop would spin and flood the log.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Serves `router` until `stopped`; then answers the requests already accepted and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stopped: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUFFER_BYTES)
        // One request per connection, so an idle client holds no connection slot.
        .keep_alive(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        // At the cap the listener stops accepting: new clients wait in the kernel's backlog
        // until a connection ends, and cost this process nothing.
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                connections.spawn(connection(
                    http.clone(),
                    stream,
                    router.clone(),
                    limits.request_timeout,
                    stopped.clone(),
                    slot,
                ));
            }
            Err(error) => {
                // One line per pause, so at most one a second.
                tracing::warn!(
                    error = %error,
                    "accept failed; the listener pauses for {ACCEPT_BACKOFF:?}"
                );
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stopped.changed() => break,
                }
            }
        }
        // Reap finished connections so the set does not grow with the load.
        while connections.try_join_next().is_some() {}
    }
    // Requests already accepted are answered (and enqueued) before the loops stop.
    while connections.join_next().await.is_some() {}
}

/// One connection, holding its slot until it ends.
async fn connection(
    http: http1::Builder,
    stream: TcpStream,
    router: Router,
    timeout: Duration,
    mut stopped: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        router.clone().oneshot(request)
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = async {
        tokio::select! {
            result = connection.as_mut() => result,
            _ = stopped.changed() => {
                // A request under way is answered; a connection still waiting for one closes.
                connection.as_mut().graceful_shutdown();
                connection.as_mut().await
            }
        }
    };
    // Rejected and timed-out connections are normal traffic for a listener: debug only.
    match tokio::time::timeout(timeout, served).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::debug!(error = %error, "connection ended early"),
        Err(_) => tracing::debug!("connection dropped after {timeout:?}"),
    }
}
