//! One connection of the web view: its place among the server's, the refusal of one over
//! the limit, and the socket that gives up on a client that stops taking its answers.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Sleep;

/// How long a connection over the limit waits for a place before it is refused.
const PLACE_WAIT: Duration = Duration::from_secs(1);

/// The most a refused client's request is read (and dropped) before its connection is
/// closed.
const REFUSED_READ: usize = 64 << 10;

/// The limits every connection of a server shares.
#[derive(Clone)]
pub(super) struct Limits {
    pub(super) max_connections: usize,
    pub(super) idle_timeout: Duration,
    /// One permit per connection served: held by its task, so a connection that ends
    /// frees its place at once.
    pub(super) places: Arc<Semaphore>,
    /// One permit per connection over the limit waiting for a place or being refused, as
    /// many as there are places: past those, a connection is closed at once, so a flood
    /// costs no more tasks and sockets than twice the limit.
    pub(super) waiting: Arc<Semaphore>,
}

impl Limits {
    pub(super) fn new(max_connections: usize, idle_timeout: Duration) -> Self {
        Self {
            max_connections,
            idle_timeout,
            places: Arc::new(Semaphore::new(max_connections)),
            waiting: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// Serves `stream` with `serve` (given the connection and the idle timeout) if it gets
    /// a place: at once, or within [`PLACE_WAIT`] as another connection ends; refuses it
    /// with `503` otherwise. With as many connections waiting or being refused as there
    /// are places, it is closed at once.
    pub(super) async fn admit<S, F>(self, stream: TcpStream, serve: S)
    where
        S: FnOnce(Connection, Duration) -> F,
        F: Future<Output = ()>,
    {
        let mut waiting = None;
        let place = match Arc::clone(&self.places).try_acquire_owned() {
            Ok(place) => Some(place),
            Err(_) => {
                let Ok(wait) = Arc::clone(&self.waiting).try_acquire_owned() else {
                    return;
                };
                waiting = Some(wait);
                let places = Arc::clone(&self.places);
                tokio::time::timeout(PLACE_WAIT, places.acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
        match place {
            Some(place) => {
                drop(waiting);
                serve(
                    Connection::new(stream, self.idle_timeout),
                    self.idle_timeout,
                )
                .await;
                drop(place);
            }
            None => {
                self.refuse(stream).await;
                drop(waiting);
            }
        }
    }

    /// Answers `503` before reading the request, then reads (and drops) what the client
    /// sends until it closes: a client that sent its request meanwhile reads the refusal,
    /// not a reset connection.
    async fn refuse(&self, mut stream: TcpStream) {
        let text = format!(
            "too many connections (at most {}): try again later\n",
            self.max_connections
        );
        let response = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{text}",
            text.len()
        );
        let refused = async {
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0; 1024];
            let mut left = REFUSED_READ;
            while left > 0 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
            io::Result::Ok(())
        };
        let _ = tokio::time::timeout(self.idle_timeout.min(PLACE_WAIT), refused).await;
    }
}

/// A client's socket that fails a write (or flush) that has made no progress for the idle
/// timeout: a client that stops reading its answer, or an `/events` stream, frees its
/// place instead of holding it for ever.
pub(super) struct Connection {
    stream: TcpStream,
    idle_timeout: Duration,
    /// Running while a write waits for the client to take what was sent before.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    fn new(stream: TcpStream, idle_timeout: Duration) -> Self {
        Self {
            stream,
            idle_timeout,
            stalled: None,
        }
    }

    /// Passes on a write's progress, or its error once it has waited for the idle timeout.
    fn unless_stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let idle_timeout = self.idle_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle_timeout)));
        std::task::ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client took nothing for {idle_timeout:?}"),
        )))
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.unless_stalled(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.unless_stalled(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.unless_stalled(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.unless_stalled(cx, polled)
    }
}
