//! Live updates: one broadcast of events to every open page, sent as
//! Server-Sent Events (`GET /api/events`).
//!
//! A page that connects first gets a `state` event (queue, running job with its
//! loss history, gallery), then every event as it happens. A page too slow to
//! keep up (the broadcast lagged) gets a fresh `state` instead of the missed
//! events. A page that goes away just drops its stream: nothing else depends on
//! it (a closed tab does not stop a job).

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// One event: its SSE name and its JSON payload.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) name: &'static str,
    pub(crate) data: String,
}

impl Event {
    pub(crate) fn new(name: &'static str, data: &impl Serialize) -> Event {
        Event {
            name,
            data: serde_json::to_string(data).expect("event serialises"),
        }
    }
}

/// The broadcast, and the switch that ends every stream at shutdown.
#[derive(Clone)]
pub(crate) struct Hub {
    tx: broadcast::Sender<Event>,
    closed: Arc<watch::Sender<bool>>,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub(crate) fn new() -> Hub {
        let (tx, _) = broadcast::channel(1024);
        let (closed, _) = watch::channel(false);
        Hub {
            tx,
            closed: Arc::new(closed),
        }
    }

    /// Sends to every open page (none open is fine).
    pub(crate) fn send(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Ends every stream (server shutdown).
    pub(crate) fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The SSE response of one page: `snapshot` first (and again after a lag).
    pub(crate) fn stream(
        &self,
        snapshot: impl Fn() -> Event + Send + Sync + 'static,
    ) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
        struct St<F> {
            rx: broadcast::Receiver<Event>,
            closed: watch::Receiver<bool>,
            snapshot: F,
            first: bool,
        }
        let st = St {
            rx: self.tx.subscribe(),
            closed: self.closed.subscribe(),
            snapshot,
            first: true,
        };
        let stream = futures_util::stream::unfold(st, |mut st| async move {
            if *st.closed.borrow() {
                return None;
            }
            if st.first {
                st.first = false;
                let e = (st.snapshot)();
                return Some((Ok(to_sse(e)), st));
            }
            let e = tokio::select! {
                r = st.rx.recv() => match r {
                    Ok(e) => e,
                    Err(broadcast::error::RecvError::Lagged(_)) => (st.snapshot)(),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                _ = st.closed.wait_for(|c| *c) => return None,
            };
            Some((Ok(to_sse(e)), st))
        });
        Sse::new(stream).keep_alive(KeepAlive::default())
    }
}

fn to_sse(e: Event) -> SseEvent {
    SseEvent::default().event(e.name).data(e.data)
}
