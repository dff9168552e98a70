//! The runtime state machine of SPEC §4, as pure functions.
//!
//! [`plan`] maps (current record, command) to a [`Transition`]: the action
//! to carry out on the container runtime and the status the record enters
//! when it succeeds, or a typed [`Refusal`]. [`observe`] does the same for
//! what RTM sees happen on its own (an exit, a vanished container). Both
//! are total over every cell of the table and tested exhaustively below.

use crate::{ContainerId, ImageRef, RuntimeRecord, RuntimeStatus};

/// What a caller asks RTM to do to a game's runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the game on `image`: create and start a container, or start
    /// the stopped one when it has that image. Satisfied already when it
    /// runs `image`.
    Start {
        /// The engine image (allow-listed by the service before planning).
        image: ImageRef,
    },
    /// Stop the engine, keeping its container and state.
    Stop,
    /// Stop and start the same engine (or start it when stopped).
    Restart,
    /// Replace the running engine by one on `image`, health-gated, with
    /// rollback (SPEC's patch rule decides which images qualify).
    Patch {
        /// The new engine image.
        image: ImageRef,
    },
    /// Remove a stopped game's container (the record stays, `removed`).
    Cleanup,
}

/// The runtime work a transition needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do: the request is already satisfied.
    Nothing,
    /// Create and start a fresh container; remove `replace` first.
    CreateAndStart {
        /// The record's previous container, removed before the create.
        replace: Option<ContainerId>,
    },
    /// Start the existing (stopped) container.
    StartExisting {
        /// The container the record binds.
        container: ContainerId,
    },
    /// Stop the running container, keeping it.
    Stop {
        /// The container the record binds.
        container: ContainerId,
    },
    /// Stop then start the same container.
    Restart {
        /// The container the record binds.
        container: ContainerId,
    },
    /// Replace the running container by one of the command's image,
    /// health-gated, with rollback to `from`.
    Patch {
        /// The running container, parked while the new one proves healthy.
        container: ContainerId,
        /// Its image, restored on rollback.
        from: ImageRef,
    },
    /// Remove the stopped container.
    Remove {
        /// The container the record binds.
        container: ContainerId,
    },
}

/// A planned transition: the action and the status entered on success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// What to do to the runtime.
    pub action: Action,
    /// The status the record enters once the action succeeded (a failed
    /// action leaves the record as it was, save the exceptions SPEC §4 lists).
    pub next: RuntimeStatus,
}

/// Why a command is refused in the current status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Only `start` applies to a game without a record
    /// ([`ErrorCode::NotFound`](crate::ErrorCode::NotFound)).
    #[error("the game has no runtime record")]
    NotFound,
    /// A `start` with another image while the game runs: a change of image
    /// is a `patch` ([`ErrorCode::AlreadyRunning`](crate::ErrorCode::AlreadyRunning)).
    #[error("the game is running another image")]
    AlreadyRunning,
    /// The command does not apply in this status (e.g. `cleanup` while
    /// running) ([`ErrorCode::Conflict`](crate::ErrorCode::Conflict)).
    #[error("not allowed while the game is {0}")]
    Conflict(RuntimeStatus),
}

/// Plans `command` against the game's current record (SPEC §4).
///
/// ```
/// use rtm_domain::transition::{plan, Action, Command};
/// use rtm_domain::{ImageRef, RuntimeStatus};
/// let image = ImageRef::parse("engine:1.0.0").unwrap();
/// let t = plan(None, &Command::Start { image }).unwrap();
/// assert_eq!(t.action, Action::CreateAndStart { replace: None });
/// assert_eq!(t.next, RuntimeStatus::Running);
/// ```
pub fn plan(record: Option<&RuntimeRecord>, command: &Command) -> Result<Transition, Refusal> {
    use RuntimeStatus::{Removed, Running, Stopped};
    let go = |action, next| Ok(Transition { action, next });
    let Some(record) = record else {
        return match command {
            Command::Start { .. } => go(Action::CreateAndStart { replace: None }, Running),
            _ => Err(Refusal::NotFound),
        };
    };
    let same_image = |image: &ImageRef| record.image_ref.as_ref() == Some(image);
    // A running or stopped record binds a container; if it somehow does
    // not, the runtime work degrades to "create a fresh one" or "nothing".
    let container = record.container_id.clone();
    match (record.status, command, container) {
        (Running, Command::Start { image }, _) if same_image(image) => go(Action::Nothing, Running),
        (Running, Command::Start { .. }, _) => Err(Refusal::AlreadyRunning),
        (Running, Command::Stop, Some(c)) => go(Action::Stop { container: c }, Stopped),
        (Running, Command::Restart, Some(c)) => go(Action::Restart { container: c }, Running),
        (Running, Command::Patch { .. }, Some(c)) => match record.image_ref.clone() {
            Some(from) => go(Action::Patch { container: c, from }, Running),
            None => go(Action::CreateAndStart { replace: Some(c) }, Running),
        },
        (Running, Command::Stop, None) => go(Action::Nothing, Stopped),
        (Running, Command::Restart | Command::Patch { .. }, None) => {
            go(Action::CreateAndStart { replace: None }, Running)
        }
        (Running, Command::Cleanup, _) => Err(Refusal::Conflict(Running)),

        (Stopped, Command::Start { image }, Some(c)) if same_image(image) => {
            go(Action::StartExisting { container: c }, Running)
        }
        (Stopped, Command::Start { .. }, c) => go(Action::CreateAndStart { replace: c }, Running),
        (Stopped, Command::Stop, _) => go(Action::Nothing, Stopped),
        (Stopped, Command::Restart, Some(c)) => go(Action::StartExisting { container: c }, Running),
        (Stopped, Command::Restart, None) => go(Action::CreateAndStart { replace: None }, Running),
        (Stopped, Command::Patch { .. }, _) => Err(Refusal::Conflict(Stopped)),
        (Stopped, Command::Cleanup, Some(c)) => go(Action::Remove { container: c }, Removed),
        (Stopped, Command::Cleanup, None) => go(Action::Nothing, Removed),

        (Removed, Command::Start { .. }, _) => {
            go(Action::CreateAndStart { replace: None }, Running)
        }
        (Removed, Command::Stop | Command::Cleanup, _) => go(Action::Nothing, Removed),
        (Removed, Command::Restart | Command::Patch { .. }, _) => Err(Refusal::Conflict(Removed)),
    }
}

/// Something RTM observed without doing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The engine exited or was OOM-killed.
    Exited,
    /// The container no longer exists.
    Disappeared,
}

/// The status an observation moves the record to, or `None` when the
/// observation does not change it (SPEC §4's last two columns).
///
/// ```
/// use rtm_domain::transition::{observe, Observed};
/// use rtm_domain::RuntimeStatus::*;
/// assert_eq!(observe(Running, Observed::Exited), Some(Stopped));
/// assert_eq!(observe(Stopped, Observed::Exited), None);
/// ```
pub fn observe(current: RuntimeStatus, observed: Observed) -> Option<RuntimeStatus> {
    use RuntimeStatus::{Removed, Running, Stopped};
    match (current, observed) {
        (Running, Observed::Exited) => Some(Stopped),
        (Running | Stopped, Observed::Disappeared) => Some(Removed),
        (Stopped | Removed, Observed::Exited) | (Removed, Observed::Disappeared) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GameId;
    use time::OffsetDateTime;
    use RuntimeStatus::*;

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    fn cid() -> ContainerId {
        ContainerId::new("c1").unwrap()
    }

    fn record(status: RuntimeStatus) -> RuntimeRecord {
        let t = OffsetDateTime::UNIX_EPOCH;
        RuntimeRecord {
            game_id: GameId::parse("g").unwrap(),
            status,
            container_id: Some(cid()),
            image_ref: Some(img("engine:1.0.0")),
            engine_endpoint: "http://rtm-g:8080".into(),
            state_path: "/s/g".into(),
            docker_network: "n".into(),
            started_at: None,
            stopped_at: None,
            removed_at: None,
            last_op_at: t,
            created_at: t,
        }
    }

    /// One cell of the table.
    #[track_caller]
    fn check(
        from: Option<RuntimeStatus>,
        cmd: Command,
        want: Result<(Action, RuntimeStatus), Refusal>,
    ) {
        let rec = from.map(record);
        let got = plan(rec.as_ref(), &cmd).map(|t| (t.action, t.next));
        assert_eq!(got, want, "from {from:?} with {cmd:?}");
    }

    #[test]
    fn every_cell_of_the_table() {
        let same = || Command::Start {
            image: img("engine:1.0.0"),
        };
        let other = || Command::Start {
            image: img("engine:2.0.0"),
        };
        let patch = || Command::Patch {
            image: img("engine:1.0.1"),
        };
        let c = cid;

        // (no record)
        check(
            None,
            same(),
            Ok((Action::CreateAndStart { replace: None }, Running)),
        );
        check(None, Command::Stop, Err(Refusal::NotFound));
        check(None, Command::Restart, Err(Refusal::NotFound));
        check(None, patch(), Err(Refusal::NotFound));
        check(None, Command::Cleanup, Err(Refusal::NotFound));

        // running
        check(Some(Running), same(), Ok((Action::Nothing, Running)));
        check(Some(Running), other(), Err(Refusal::AlreadyRunning));
        check(
            Some(Running),
            Command::Stop,
            Ok((Action::Stop { container: c() }, Stopped)),
        );
        check(
            Some(Running),
            Command::Restart,
            Ok((Action::Restart { container: c() }, Running)),
        );
        check(
            Some(Running),
            patch(),
            Ok((
                Action::Patch {
                    container: c(),
                    from: img("engine:1.0.0"),
                },
                Running,
            )),
        );
        check(
            Some(Running),
            Command::Cleanup,
            Err(Refusal::Conflict(Running)),
        );

        // stopped
        check(
            Some(Stopped),
            same(),
            Ok((Action::StartExisting { container: c() }, Running)),
        );
        check(
            Some(Stopped),
            other(),
            Ok((Action::CreateAndStart { replace: Some(c()) }, Running)),
        );
        check(Some(Stopped), Command::Stop, Ok((Action::Nothing, Stopped)));
        check(
            Some(Stopped),
            Command::Restart,
            Ok((Action::StartExisting { container: c() }, Running)),
        );
        check(Some(Stopped), patch(), Err(Refusal::Conflict(Stopped)));
        check(
            Some(Stopped),
            Command::Cleanup,
            Ok((Action::Remove { container: c() }, Removed)),
        );

        // removed
        check(
            Some(Removed),
            same(),
            Ok((Action::CreateAndStart { replace: None }, Running)),
        );
        check(
            Some(Removed),
            other(),
            Ok((Action::CreateAndStart { replace: None }, Running)),
        );
        check(Some(Removed), Command::Stop, Ok((Action::Nothing, Removed)));
        check(
            Some(Removed),
            Command::Restart,
            Err(Refusal::Conflict(Removed)),
        );
        check(Some(Removed), patch(), Err(Refusal::Conflict(Removed)));
        check(
            Some(Removed),
            Command::Cleanup,
            Ok((Action::Nothing, Removed)),
        );
    }

    #[test]
    fn a_record_without_container_degrades_safely() {
        let mut rec = record(Running);
        rec.container_id = None;
        assert_eq!(
            plan(Some(&rec), &Command::Stop).map(|t| t.action),
            Ok(Action::Nothing)
        );
        assert_eq!(
            plan(Some(&rec), &Command::Restart).map(|t| t.action),
            Ok(Action::CreateAndStart { replace: None })
        );
        rec.status = Stopped;
        assert_eq!(
            plan(Some(&rec), &Command::Cleanup).map(|t| (t.action, t.next)),
            Ok((Action::Nothing, Removed))
        );
    }

    #[test]
    fn every_observation() {
        let cases = [
            (Running, Observed::Exited, Some(Stopped)),
            (Running, Observed::Disappeared, Some(Removed)),
            (Stopped, Observed::Exited, None),
            (Stopped, Observed::Disappeared, Some(Removed)),
            (Removed, Observed::Exited, None),
            (Removed, Observed::Disappeared, None),
        ];
        for (from, obs, want) in cases {
            assert_eq!(observe(from, obs), want, "{from:?} {obs:?}");
        }
    }
}
