//! [`NatsTransport`]: frames carried by a NATS server (step in progress).

/// Frames carried by a NATS server.
#[derive(Debug)]
pub struct NatsTransport {}
