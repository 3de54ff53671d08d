//! [`RestartGroup`]: siblings restarted together ("one for all").

use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use crate::exit::{ChildId, ThreadState};
use crate::lock::lock;
use crate::node::Node;

/// Siblings restarted together ("one for all"): see [`RestartPolicy::group`](super::RestartPolicy::group).
#[derive(Clone, Default)]
pub struct RestartGroup {
    members: Arc<Mutex<Vec<Weak<Node>>>>,
}

impl RestartGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn join(&self, node: &Arc<Node>) {
        let mut members = lock(&self.members);
        members.retain(|m| m.strong_count() > 0);
        members.push(Arc::downgrade(node));
    }

    pub(crate) fn restart_others(&self, me: ChildId) {
        let members: Vec<Arc<Node>> = lock(&self.members)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for member in members {
            if member.id != me && member.state() != ThreadState::Exited {
                member.request_restart();
            }
        }
    }
}

impl fmt::Debug for RestartGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members = lock(&self.members).len();
        f.debug_struct("RestartGroup")
            .field("members", &members)
            .finish()
    }
}
