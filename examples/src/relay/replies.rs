//! What a `TcpConnection` writes to its client after the greeting: acknowledgements of the
//! frames stored (with `--ack`), and the end of the connection, clean or reset, as its
//! [`Receipt`] says (see the [wire protocol](super::frame#receipts)).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;
use tokio::time::timeout;

use super::RelayStats;
use super::frame::ack;
use super::receipt::Receipt;

/// How long writing one acknowledgement may take: a client that reads none of them for
/// this long gets no more, and a reset at the end.
pub const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a connection ended, as its client saw it.
#[derive(Debug)]
pub enum Closed {
    /// Closed cleanly: every frame the client sent is stored.
    Cleanly {
        /// The client's frames stored.
        stored: u64,
    },
    /// Reset: something the client sent was not stored, or will not be.
    Reset(Receipt),
}

/// The writing half of a client's connection, from the greeting on.
///
/// [`run`](Self::run) follows the client's receipt: it writes each new count of stored
/// frames (with acknowledgements on), and once the receipt is settled, closes the
/// connection: cleanly if everything the client sent is stored, with a reset otherwise.
/// Dropped before (the relay was aborted), it resets the connection: a clean close is
/// never said by accident.
#[derive(Debug)]
pub struct Replies {
    writer: Option<OwnedWriteHalf>,
    receipts: watch::Receiver<Receipt>,
    acks: bool,
    client: SocketAddr,
    stats: Arc<RelayStats>,
}

impl Replies {
    /// The replies on `writer`, following `receipts`; with `acks`, each new count stored
    /// is written (within [`ACK_WRITE_TIMEOUT`]).
    pub fn new(
        writer: OwnedWriteHalf,
        receipts: watch::Receiver<Receipt>,
        acks: bool,
        client: SocketAddr,
        stats: Arc<RelayStats>,
    ) -> Self {
        Self {
            writer: Some(writer),
            receipts,
            acks,
            client,
            stats,
        }
    }

    /// Writes acknowledgements until the receipt is settled, then closes.
    pub async fn run(mut self) -> Closed {
        let mut acked = 0;
        let mut acks_failed = false;
        loop {
            let receipt = *self.receipts.borrow_and_update();
            if self.acks && !acks_failed && receipt.stored > acked {
                match self.write_ack(receipt.stored).await {
                    Ok(()) => {
                        self.stats.count_acked(receipt.stored - acked);
                        acked = receipt.stored;
                    }
                    Err(e) => {
                        tracing::warn!(client = %self.client, "cannot acknowledge frames any more: {e}");
                        acks_failed = true;
                    }
                }
            }
            // The sender lives in the ledger, which the connection holds while this runs.
            if receipt.is_settled() || self.receipts.changed().await.is_err() {
                let receipt = *self.receipts.borrow();
                return self.close(receipt, acks_failed);
            }
        }
    }

    async fn write_ack(&mut self, stored: u64) -> io::Result<()> {
        let writer = self.writer.as_mut().expect("open until closed");
        match timeout(ACK_WRITE_TIMEOUT, writer.write_all(&ack(stored))).await {
            Ok(written) => written,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {ACK_WRITE_TIMEOUT:?}"),
            )),
        }
    }

    fn close(&mut self, receipt: Receipt, acks_failed: bool) -> Closed {
        if receipt.is_complete() && !acks_failed {
            drop(self.writer.take()); // a FIN, once the reading half is gone too
            Closed::Cleanly {
                stored: receipt.stored,
            }
        } else {
            reset(self.writer.take());
            Closed::Reset(receipt)
        }
    }
}

impl Drop for Replies {
    fn drop(&mut self) {
        reset(self.writer.take());
    }
}

/// Resets the connection instead of closing it: no FIN, and a RST once the reading half
/// is dropped too.
fn reset(writer: Option<OwnedWriteHalf>) {
    if let Some(writer) = writer {
        let _ = writer.as_ref().set_zero_linger();
        writer.forget();
    }
}
