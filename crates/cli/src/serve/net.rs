//! The HTTP server loop: hyper's HTTP/1 connections with the studio's bounds.
//!
//! - **Headers**: a request's head must arrive within `--header-timeout`
//!   (hyper's `header_read_timeout`; it also runs while a kept-alive
//!   connection waits for its next request, so an idle connection closes
//!   after that time too).
//! - **Bodies**: a request's body must arrive whole within `--body-timeout` of
//!   its head ([`TimedBody`]); otherwise the handler sees an error (408) and
//!   the connection closes.
//! - **Connections**: at most `--max-connections` at once, and never more than
//!   the file-descriptor limit allows with [`FD_RESERVE`] descriptors left for
//!   the painting and the files (a connection beyond it waits in the kernel's
//!   backlog until one closes); an `accept` that fails (too many open files)
//!   is retried after a pause, never fatal.
//! - **Shutdown**: when `stop` turns true, no new connection is accepted,
//!   every open one is asked to close after its request, and the loop returns
//!   at the latest [`GRACE`] later: a stalled client cannot hold the exit.

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// How long shutdown waits for open connections once the painting is saved.
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// File descriptors kept for everything but connections (the listener, the
/// runtime, the painting's inputs, results, the gallery directory).
pub(crate) const FD_RESERVE: u64 = 48;

/// The peer of a request's connection (a request extension).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The error of a body that did not arrive in time.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyTimedOut {}

/// Whether an error (or one of its sources) is [`BodyTimedOut`].
pub(crate) fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(e);
    while let Some(x) = e {
        if x.is::<BodyTimedOut>() {
            return true;
        }
        e = x.source();
    }
    false
}

/// A request body that fails once its deadline has passed.
pub(crate) struct TimedBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(f) => Poll::Ready(f.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The server's bounds on connections.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) max_connections: usize,
}

/// Connections the kernel holds for the server before it accepts them (std's
/// and tokio's 128 would drop new ones while slow clients fill every slot).
const BACKLOG: u32 = 1024;

/// A listening socket at `addr`, with room for [`BACKLOG`] pending connections.
pub(crate) fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The connections this process can hold: `wanted`, less where the soft
/// file-descriptor limit (raised to the hard one first) leaves fewer than
/// [`FD_RESERVE`] for the rest; at least 4.
pub(crate) fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit/setrlimit on a valid, initialised struct.
        let fds = unsafe {
            let mut r: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return wanted.max(4);
            }
            if r.rlim_cur < r.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: r.rlim_max,
                    rlim_max: r.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    r.rlim_cur = r.rlim_max;
                }
            }
            r.rlim_cur as u64
        };
        let room = fds.saturating_sub(FD_RESERVE);
        (wanted as u64).min(room).max(4) as usize
    }
    #[cfg(not(unix))]
    {
        wanted.max(4)
    }
}

/// When `stop` turns true (never, if its sender is gone without).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Serves `app` on `listener` until `stop` turns true (see the module).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    say: impl Fn(&str),
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; `alive.closed()` is when all are gone.
    let (alive, alive_rx) = watch::channel(());
    let mut accept_errors = 0u64;
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Too many open files and the like: wait, never give up.
                    if accept_errors == 0 {
                        say(&format!("error: accepting a connection: {e} (retrying)"));
                    }
                    accept_errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        accept_errors = 0;
        let app = app.clone();
        let mut stop = stop.clone();
        let alive = alive_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _alive = alive;
            let body_timeout = limits.body_timeout;
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let mut app = app.clone();
                let mut req = req.map(|inner| {
                    Body::new(TimedBody {
                        inner,
                        deadline: Box::pin(tokio::time::sleep(body_timeout)),
                    })
                });
                req.extensions_mut().insert(Peer(peer));
                tower_service::Service::call(&mut app, req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    drop(alive_rx);
    let _ = tokio::time::timeout(GRACE, alive.closed()).await;
}
