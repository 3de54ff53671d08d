//! One websocket connection from a `WebsocketSub` to its destination: connecting and
//! writing within time limits, the reading half handed to the thread as a stream of
//! [`LinkEvent`]s, and taken back at exit to read the destination's last answers.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reader = SplitStream<Socket>;

/// The outcome of a connection attempt: a link and its incoming messages, or why not.
#[derive(Debug)]
pub struct Connected(pub Result<(Link, Incoming), String>);

/// The writing half of a connection to a destination, and where its reading half comes
/// back to.
#[derive(Debug)]
pub struct Link {
    /// Tells this link's events from those of an earlier link.
    id: u64,
    writer: SplitSink<Socket, Message>,
    write_timeout: Duration,
    /// The reading half, once [`Incoming`] has given it back.
    reader: Option<Reader>,
    reader_back: Option<oneshot::Receiver<Reader>>,
}

/// What a destination said, as far as its sub is concerned.
#[derive(Debug)]
pub enum Heard {
    /// A pong, carrying the payload of the ping it answers.
    Pong(Bytes),
    /// The connection is gone, for this reason.
    Gone(String),
    /// Nothing that matters to the sub (or an event of an earlier link).
    Nothing,
}

impl Link {
    /// One connection attempt to `url` (`ws://host:port/path`) within `connect_timeout`;
    /// each write on the link is then limited to `write_timeout`.
    pub async fn connect(
        url: String,
        connect_timeout: Duration,
        write_timeout: Duration,
    ) -> Connected {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let socket = match timeout(connect_timeout, connect_async(url.as_str())).await {
            Ok(Ok((socket, _response))) => socket,
            Ok(Err(e)) => return Connected(Err(e.to_string())),
            Err(_) => return Connected(Err(format!("no answer within {connect_timeout:?}"))),
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (writer, reader) = socket.split();
        let (back, reader_back) = oneshot::channel();
        let link = Link {
            id,
            writer,
            write_timeout,
            reader: None,
            reader_back: Some(reader_back),
        };
        let incoming = Incoming {
            link: id,
            reader: Some(reader),
            back: Some(back),
        };
        Connected(Ok((link, incoming)))
    }

    /// Writes one message.
    pub async fn send(&mut self, message: Message) -> Result<(), String> {
        within(self.write_timeout, self.writer.send(message)).await
    }

    /// Makes sense of an event of the attached [`Incoming`].
    pub async fn hear(&mut self, event: LinkEvent) -> Heard {
        if event.link != self.id {
            return Heard::Nothing; // a link given up earlier
        }
        self.interpret(event.message).await
    }

    /// Reads the next message directly, waiting until `deadline` at most: for `exit`, once
    /// the attached [`Incoming`] has been dropped and has given the reading half back.
    pub async fn hear_directly(&mut self, deadline: Instant) -> Heard {
        if self.reader.is_none()
            && let Some(back) = self.reader_back.take()
        {
            self.reader = timeout_at(deadline, back).await.ok().and_then(Result::ok);
        }
        let Some(reader) = self.reader.as_mut() else {
            return Heard::Gone("the connection ended".to_owned());
        };
        match timeout_at(deadline, reader.next()).await {
            Ok(message) => self.interpret(message).await,
            Err(_) => Heard::Gone("the destination did not answer in time".to_owned()),
        }
    }

    /// Closes the connection, within the write time limit.
    pub async fn close(mut self) {
        let _ = timeout(self.write_timeout, self.writer.close()).await;
    }

    async fn interpret(&mut self, message: Option<Result<Message, tungstenite::Error>>) -> Heard {
        match message {
            Some(Ok(Message::Pong(payload))) => Heard::Pong(payload),
            // Reading queued the pong; flushing sends it even when nothing else is written.
            Some(Ok(Message::Ping(_))) => {
                match within(self.write_timeout, self.writer.flush()).await {
                    Ok(()) => Heard::Nothing,
                    Err(reason) => Heard::Gone(reason),
                }
            }
            Some(Ok(Message::Close(_))) | None => {
                Heard::Gone("the destination closed the connection".to_owned())
            }
            Some(Err(e)) => Heard::Gone(e.to_string()),
            Some(Ok(_)) => Heard::Nothing, // destinations have nothing else to say to the relay
        }
    }
}

/// Runs a write within `limit`; an error says why it failed.
async fn within(
    limit: Duration,
    write: impl Future<Output = Result<(), tungstenite::Error>>,
) -> Result<(), String> {
    match timeout(limit, write).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("writing took over {limit:?}")),
    }
}

/// One message from a destination, or the end of its connection (`None`), tagged with
/// its link.
#[derive(Debug)]
pub struct LinkEvent {
    link: u64,
    message: Option<Result<Message, tungstenite::Error>>,
}

/// The messages of a link's destination, as a stream to attach; its last event is the
/// end of the connection.
///
/// A thread's attached streams are dropped as soon as it starts stopping, but a sub still
/// needs to read the pongs that confirm its last frames in `exit`: dropped, this stream
/// gives the reading half back to its [`Link`].
#[derive(Debug)]
pub struct Incoming {
    link: u64,
    reader: Option<Reader>,
    back: Option<oneshot::Sender<Reader>>,
}

impl Stream for Incoming {
    type Item = LinkEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        let Some(reader) = self.reader.as_mut() else {
            return Poll::Ready(None);
        };
        let message = ready!(reader.poll_next_unpin(cx));
        if message.is_none() {
            self.reader = None; // ended: nothing to give back
        }
        let link = self.link;
        Poll::Ready(Some(LinkEvent { link, message }))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let (Some(reader), Some(back)) = (self.reader.take(), self.back.take()) {
            let _ = back.send(reader);
        }
    }
}
