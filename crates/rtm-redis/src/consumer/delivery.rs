//! [`Delivery`]: one entry delivered to this consumer (by a read or a
//! claim), sorted into a command to run or a dead letter to write.

use rtm_domain::service::OperationRequest;

use crate::entry::{parse_entry, DeadReason, StreamEntry};
/// What the reader and the claimer hand to the dispatcher.
pub(super) enum Delivery {
    /// A well-formed entry within the delivery limit.
    Command {
        id: String,
        req: Box<OperationRequest>,
    },
    /// An entry to copy to `<stream>:dead`, then acknowledge when `ack`
    /// (an entry already gone from the pending list needs no ack).
    Dead {
        entry: StreamEntry,
        reason: DeadReason,
        deliveries: u64,
        ack: bool,
    },
}

impl Delivery {
    /// The stream entry id.
    pub(super) fn id(&self) -> &str {
        match self {
            Delivery::Command { id, .. } => id,
            Delivery::Dead { entry, .. } => &entry.id,
        }
    }
}

/// Sorts one received entry: malformed first (the more specific reason),
/// then the delivery limit.
pub(super) fn classify(entry: StreamEntry, deliveries: u64, max: u64) -> Delivery {
    match parse_entry(&entry) {
        Err(m) => Delivery::Dead {
            entry,
            reason: DeadReason::Malformed(m),
            deliveries,
            ack: true,
        },
        Ok(_) if deliveries > max => Delivery::Dead {
            entry,
            reason: DeadReason::MaxDeliveries { deliveries, max },
            deliveries,
            ack: true,
        },
        Ok(req) => Delivery::Command {
            id: entry.id,
            req: Box::new(req),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_prefers_malformed_then_delivery_limit() {
        let good = StreamEntry::new("1-0", &[("op", "stop"), ("game_id", "g1")]);
        assert!(matches!(
            classify(good.clone(), 5, 5),
            Delivery::Command { .. }
        ));
        match classify(good, 6, 5) {
            Delivery::Dead { reason, ack, .. } => {
                assert_eq!(
                    reason,
                    DeadReason::MaxDeliveries {
                        deliveries: 6,
                        max: 5
                    }
                );
                assert!(ack);
            }
            Delivery::Command { .. } => panic!("poison entry accepted"),
        }
        let bad = StreamEntry::new("2-0", &[("op", "jump"), ("game_id", "g1")]);
        match classify(bad, 9, 5) {
            Delivery::Dead { reason, .. } => assert_eq!(reason.code(), "unknown_op"),
            Delivery::Command { .. } => panic!("malformed entry accepted"),
        }
    }
}
