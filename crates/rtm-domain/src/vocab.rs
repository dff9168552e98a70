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
    pub kind: &'static str,
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
        Running => "running",
        Stopped => "stopped",
        Removed => "removed",
    }
}

vocabulary! {
    /// `operation_log.op_kind`.
    OpKind, "operation kind" {
        Start => "start",
        Stop => "stop",
        Restart => "restart",
        Patch => "patch",
        CleanupContainer => "cleanup_container",
        ReconcileAdopt => "reconcile_adopt",
        ReconcileDispose => "reconcile_dispose",
    }
}

vocabulary! {
    /// `operation_log.op_source`: who asked for an operation.
    OpSource, "operation source" {
        LobbyStream => "lobby_stream",
        GmRest => "gm_rest",
        AdminRest => "admin_rest",
        AutoTtl => "auto_ttl",
        AutoReconcile => "auto_reconcile",
    }
}

vocabulary! {
    /// `operation_log.outcome`.
    Outcome, "outcome" {
        Success => "success",
        Failure => "failure",
    }
}

vocabulary! {
    /// `health_snapshots.status` and the `event_type` of `runtime:health_events`.
    HealthStatus, "health status" {
        Healthy => "healthy",
        ProbeFailed => "probe_failed",
        Exited => "exited",
        Oom => "oom",
        InspectUnhealthy => "inspect_unhealthy",
        ContainerDisappeared => "container_disappeared",
    }
}

vocabulary! {
    /// `health_snapshots.source`: which observer saw it.
    HealthSource, "health source" {
        DockerEvent => "docker_event",
        Inspect => "inspect",
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
