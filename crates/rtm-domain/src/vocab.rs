//! The closed vocabularies shared with the database, the streams and REST:
//! runtime status, operation kind/source/outcome, health status/source.
//!
//! Each enum has one canonical lowercase spelling (`as_str`) and a `parse`
//! that accepts exactly that spelling; the seed schema's CHECK constraints
//! enforce the same sets in PostgreSQL.

use std::fmt;

/// An unknown spelling for one of the vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// Which vocabulary (`"runtime status"`, `"operation kind"`…).
    pub kind: &'static str,
    /// The spelling that was not recognised.
    pub value: String,
}

macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling used in storage and on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling.
            pub fn parse(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// `runtime_records.status`: the latest known runtime status of a game.
    RuntimeStatus, "runtime status" {
        /// The engine container runs (as far as RTM last knew).
        Running => "running",
        /// The container exists but is stopped (by RTM or an observed exit).
        Stopped => "stopped",
        /// No container any more; the record stays for the audit and expires.
        Removed => "removed",
    }
}

vocabulary! {
    /// `operation_log.op_kind`.
    OpKind, "operation kind" {
        /// A start command.
        Start => "start",
        /// A stop command.
        Stop => "stop",
        /// A restart command.
        Restart => "restart",
        /// A patch command (image change with rollback).
        Patch => "patch",
        /// A cleanup command, or the TTL cleanup of a stopped game.
        CleanupContainer => "cleanup_container",
        /// The reconciler adopted a running container the record did not
        /// bind, or finished an interrupted patch rollback.
        ReconcileAdopt => "reconcile_adopt",
        /// The reconciler removed a container the game should not have, or
        /// marked `removed` a record whose container vanished.
        ReconcileDispose => "reconcile_dispose",
    }
}

vocabulary! {
    /// `operation_log.op_source`: who asked for an operation.
    OpSource, "operation source" {
        /// The Lobby's Redis command stream.
        LobbyStream => "lobby_stream",
        /// The Game Master's REST API.
        GmRest => "gm_rest",
        /// The admin REST API (or `rtmanager ctl`).
        AdminRest => "admin_rest",
        /// RTM's TTL cleanup worker.
        AutoTtl => "auto_ttl",
        /// RTM's reconciler.
        AutoReconcile => "auto_reconcile",
    }
}

vocabulary! {
    /// `operation_log.outcome`.
    Outcome, "outcome" {
        /// The operation did what was asked (or it was already so).
        Success => "success",
        /// The operation was refused or failed; its row carries the error.
        Failure => "failure",
    }
}

vocabulary! {
    /// `health_snapshots.status` and the `event_type` of `runtime:health_events`.
    HealthStatus, "health status" {
        /// The engine answered its HTTP health probe.
        Healthy => "healthy",
        /// `RTM_PROBE_FAILURES` probes in a row failed.
        ProbeFailed => "probe_failed",
        /// The engine process ended (not by RTM's own stop).
        Exited => "exited",
        /// The kernel's OOM killer ended the engine (Docker's word only).
        Oom => "oom",
        /// Docker's own health check (defined by the image) says unhealthy.
        InspectUnhealthy => "inspect_unhealthy",
        /// The container is gone without RTM removing it.
        ContainerDisappeared => "container_disappeared",
    }
}

vocabulary! {
    /// `health_snapshots.source`: which observer saw it.
    HealthSource, "health source" {
        /// The runtime's event feed.
        DockerEvent => "docker_event",
        /// A periodic inspect pass.
        Inspect => "inspect",
        /// A periodic HTTP probe pass.
        Probe => "probe",
    }
}

impl HealthStatus {
    /// Whether this status means the engine process is gone.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            HealthStatus::Exited | HealthStatus::Oom | HealthStatus::ContainerDisappeared
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_roundtrip() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Result<T, UnknownValue>,
        ) {
            for &v in all {
                assert_eq!(parse(as_str(v)), Ok(v));
            }
            assert!(parse("Running").is_err() && parse("").is_err());
        }
        check(
            RuntimeStatus::ALL,
            RuntimeStatus::as_str,
            RuntimeStatus::parse,
        );
        check(OpKind::ALL, OpKind::as_str, OpKind::parse);
        check(OpSource::ALL, OpSource::as_str, OpSource::parse);
        check(Outcome::ALL, Outcome::as_str, Outcome::parse);
        check(HealthStatus::ALL, HealthStatus::as_str, HealthStatus::parse);
        check(HealthSource::ALL, HealthSource::as_str, HealthSource::parse);
        assert_eq!(OpKind::ALL.len(), 7);
        assert_eq!(HealthStatus::ALL.len(), 6);
    }
}
