//! [`NatsTransport`]: frames carried by a NATS server, one subject per address under a
//! prefix, with core NATS's at-most-once delivery (the protocol above makes each edge
//! reliable and ordered).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_core::Stream;

use super::{BoxFuture, Frames, Transport, check_address};
use crate::error::TransportError;

/// The subject prefix unless told otherwise.
pub const DEFAULT_PREFIX: &str = "taskthread";

/// Frames carried by a NATS server: the address `host.a` is the subject
/// `taskthread.host.a`. Clones share the connection.
///
/// ```no_run
/// use taskthread_nats::{Host, NatsTransport};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = NatsTransport::connect("nats://127.0.0.1:4222").await?;
/// let host = Host::builder("worker-1", transport).start().await?;
/// # host.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct NatsTransport {
    client: Client,
    prefix: String,
}

impl fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTransport")
            .field("prefix", &self.prefix)
            .field("state", &self.client.connection_state())
            .finish_non_exhaustive()
    }
}

impl NatsTransport {
    /// Connects to the NATS server at `url` (e.g. `nats://127.0.0.1:4222`).
    pub async fn connect(url: &str) -> Result<Self, TransportError> {
        let client = async_nats::connect(url)
            .await
            .map_err(|e| TransportError::Other(Box::new(e)))?;
        Ok(Self::from_client(client))
    }

    /// Carries frames over a client connected already (with its own options: credentials,
    /// TLS, reconnection).
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }

    /// Puts every subject under `prefix` rather than [`DEFAULT_PREFIX`], so several trees
    /// can share one server without seeing each other's hosts.
    ///
    /// # Panics
    /// If `prefix` is not dot-separated words of ASCII letters, digits, `-` and `_`.
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        if let Err(e) = check_address(prefix) {
            panic!("a bad subject prefix: {e}");
        }
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn subject(&self, address: &str) -> Result<String, TransportError> {
        check_address(address)?;
        Ok(format!("{}.{address}", self.prefix))
    }
}

impl Transport for NatsTransport {
    fn listen<'a>(&'a self, address: &'a str) -> BoxFuture<'a, Result<Frames, TransportError>> {
        Box::pin(async move {
            let subject = self.subject(address)?;
            let subscriber = self
                .client
                .subscribe(subject)
                .await
                .map_err(|e| TransportError::Other(Box::new(e)))?;
            Ok(Box::pin(Payloads(subscriber)) as Frames)
        })
    }

    fn send<'a>(
        &'a self,
        address: &'a str,
        frame: Bytes,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let subject = self.subject(address)?;
            let max = self.client.max_payload();
            if frame.len() > max {
                return Err(TransportError::TooLarge {
                    size: frame.len(),
                    max,
                });
            }
            self.client
                .publish(subject, frame)
                .await
                .map_err(|e| TransportError::Other(Box::new(e)))
        })
    }

    fn max_frame(&self) -> usize {
        self.client.max_payload()
    }
}

/// The payloads of a subscription's messages.
struct Payloads(Subscriber);

impl Stream for Payloads {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|message| message.map(|m| m.payload))
    }
}
