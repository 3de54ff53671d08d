//! The bodies the web view answers with: a whole one, or the endless stream of `/events`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame};

use crate::watch::{Update, WatchStream};

/// A response body.
pub(super) enum Page {
    /// All of it at once (taken by the first poll).
    Whole(Option<Bytes>),
    /// Server-sent events: one per message of a watch stream, until the connection goes.
    Events(Events),
}

impl Page {
    pub(super) fn whole(bytes: impl Into<Bytes>) -> Self {
        Self::Whole(Some(bytes.into()))
    }
}

/// The watch stream of one `/events` connection: the wait for its next message, which
/// owns the stream and gives it back with the message.
pub(super) struct Events {
    next: Pin<Box<dyn Future<Output = (WatchStream, Arc<Update>)> + Send>>,
}

impl Events {
    pub(super) fn new(stream: WatchStream) -> Self {
        Self {
            next: Box::pin(next_of(stream)),
        }
    }
}

async fn next_of(mut stream: WatchStream) -> (WatchStream, Arc<Update>) {
    let update = stream.next_update().await;
    (stream, update)
}

impl Body for Page {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Self::Events(events) => {
                let (stream, update) = std::task::ready!(events.next.as_mut().poll(cx));
                events.next = Box::pin(next_of(stream));
                let event = format!("data: {}\n\n", update.json());
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(event)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Self::Whole(None))
    }
}
