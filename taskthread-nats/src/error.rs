//! The errors of remoting: a transport that fails ([`TransportError`]), a spawn that cannot
//! be asked for ([`SpawnError`]), a host that cannot start ([`HostError`]), and a frame that
//! cannot be read.

use std::fmt;

/// A transport failed: it could not connect, listen or send.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The address is not one the transport can use, and why.
    Address(String),
    /// Something is already listening at the address.
    InUse(String),
    /// A frame is larger than the transport carries.
    TooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The largest frame the transport carries.
        max: usize,
    },
    /// The transport is closed or its connection is gone.
    Closed,
    /// The transport's own error.
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Address(why) => write!(f, "bad address: {why}"),
            Self::InUse(address) => write!(f, "something already listens at `{address}`"),
            Self::TooLarge { size, max } => {
                write!(
                    f,
                    "a frame of {size} bytes is larger than the {max} bytes the transport carries"
                )
            }
            Self::Closed => f.write_str("the transport is closed"),
            Self::Other(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Other(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A remote child could not be asked for: nothing was sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// The factory's arguments could not be written.
    Args(postcard::Error),
    /// The host's name is not one a host can have.
    HostName(String),
    /// The spawn request is larger than the transport carries.
    TooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The largest frame the transport carries.
        max: usize,
    },
    /// The remotes' endpoint is closed.
    Closed,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Args(e) => write!(f, "the spawn arguments cannot be written: {e}"),
            Self::HostName(why) => write!(f, "bad host name: {why}"),
            Self::TooLarge { size, max } => write!(
                f,
                "the spawn request of {size} bytes is larger than the {max} bytes the transport carries"
            ),
            Self::Closed => f.write_str("the remotes' endpoint is closed"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Args(e) => Some(e),
            _ => None,
        }
    }
}

/// A host could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// The host's name is not one a host can have.
    Name(String),
    /// Two types were registered under one name.
    Duplicate(String),
    /// The transport could not listen at the host's address.
    Transport(TransportError),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(why) => write!(f, "bad host name: {why}"),
            Self::Duplicate(name) => write!(f, "two thread types are registered as `{name}`"),
            Self::Transport(e) => write!(f, "the host cannot listen: {e}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Transport(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks that `name` can be a host's name: letters, digits, `-` and `_`, at most 64.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!("`{name}` must have 1 to 64 characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}` has `{c}`: a host's name has only ASCII letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}
