//! [`SwarmConfig`]: the single-host adapter's settings ([`DockerConfig`],
//! parsed by rtm-docker's parsers, never copied) plus what only a swarm
//! needs, and the one refusal the adapter makes at construction: it does
//! not run engines weaker than one Docker host would without the
//! operator's explicit word ([`SwarmConfig::accept_weaker_isolation`]).

use std::time::Duration;

use rtm_docker::{DockerConfig, DockerConfigError};

/// Settings of the Swarm adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmConfig {
    /// Everything the single-host adapter has: the manager's Engine API,
    /// `rtm.owner`, the engines' network (here an *attachable overlay*
    /// network, created if missing), engine user, limits, log caps,
    /// capability allow-list, tmpfs size, pids limit, registry auth file.
    pub docker: DockerConfig,
    /// The stop grace written into each service (`StopGracePeriod`). The
    /// manager stops a task on its own node itself, with the grace of the
    /// request; a task on another node is stopped by its node's agent,
    /// which only knows this one. Set it to `RTM_STOP_TIMEOUT`.
    pub stop_grace: Duration,
    /// Longest `start` waits for the task to run (placement, image
    /// present on the node, container start).
    pub start_timeout: Duration,
    /// How often the event feed lists the tasks.
    pub poll_interval: Duration,
    /// Placement constraints of engine tasks (`RTM_SWARM_CONSTRAINTS`,
    /// e.g. `node.labels.rtm-engines==true`); empty: any node.
    pub constraints: Vec<String>,
    /// The operator's word that the two gaps of Docker 20.10's service API
    /// are handled or accepted (`RTM_SWARM_ACCEPT_WEAKER_ISOLATION`):
    /// a task cannot be given `no-new-privileges`, and Swarm lets a task
    /// swap as much as its memory limit (`MemorySwap` = 2 × memory) where
    /// one host forbids swap. See `docs/swarm.md`. Without it,
    /// [`SwarmRuntime::new`](crate::SwarmRuntime::new) refuses.
    pub accept_weaker_isolation: bool,
    /// Whether the adapter uses this manager's own engine for a task on
    /// this node (the default): a stop with the request's grace, OOM and
    /// exact times from the container, its logs. `false` treats every task
    /// as on another node (scale to 0, the task list, the task logs
    /// endpoint); the tests use it to check the remote behaviour on a
    /// single node.
    pub local_engine: bool,
}

impl SwarmConfig {
    /// The single-host defaults, a 30 s stop grace, a 60 s start timeout,
    /// a one-second feed and no constraints; weaker isolation refused.
    pub fn with_defaults(owner: impl Into<String>) -> Self {
        Self {
            docker: DockerConfig::with_defaults(owner),
            stop_grace: Duration::from_secs(30),
            start_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_secs(1),
            constraints: Vec::new(),
            accept_weaker_isolation: false,
            local_engine: true,
        }
    }

    /// Checks every field; see [`SwarmConfigError`].
    pub fn validate(&self) -> Result<(), SwarmConfigError> {
        self.docker.validate()?;
        if self.start_timeout.is_zero() || self.poll_interval.is_zero() {
            return Err(SwarmConfigError::BadDuration);
        }
        for c in &self.constraints {
            parse_constraint(c)?;
        }
        if !self.accept_weaker_isolation {
            return Err(SwarmConfigError::WeakerIsolation);
        }
        Ok(())
    }
}

/// A setting the adapter cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwarmConfigError {
    #[error(transparent)]
    Docker(#[from] DockerConfigError),
    #[error("the start timeout and the feed's poll interval must be greater than zero")]
    BadDuration,
    #[error("{0:?} is not a placement constraint (e.g. node.labels.rtm-engines==true)")]
    BadConstraint(String),
    #[error(
        "Docker's service API (v1.41) cannot give engines no-new-privileges, and Swarm lets each \
         engine swap as much as its memory limit: engines would run weaker than on one Docker \
         host. Make every engine node's dockerd run with --no-new-privileges and without swap \
         (see docs/swarm.md), then set RTM_SWARM_ACCEPT_WEAKER_ISOLATION=true"
    )]
    WeakerIsolation,
}

/// Checks one placement constraint: `<attribute> == <value>` or `!=`,
/// both sides non-empty and without a comma (the CLI's separator).
pub fn parse_constraint(s: &str) -> Result<String, SwarmConfigError> {
    let bad = || SwarmConfigError::BadConstraint(s.to_owned());
    let t = s.trim();
    let (l, r) = t
        .split_once("==")
        .or_else(|| t.split_once("!="))
        .ok_or_else(bad)?;
    if l.trim().is_empty() || r.trim().is_empty() || t.contains(',') {
        return Err(bad());
    }
    Ok(t.to_owned())
}

/// Parses `RTM_SWARM_CONSTRAINTS`: constraints separated by `;` (a
/// constraint's value may not hold one), blanks ignored.
pub fn parse_constraints(list: &str) -> Result<Vec<String>, SwarmConfigError> {
    list.split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(parse_constraint)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weaker_isolation_is_refused_unless_accepted() {
        let mut c = SwarmConfig::with_defaults("o");
        assert_eq!(c.validate(), Err(SwarmConfigError::WeakerIsolation));
        c.accept_weaker_isolation = true;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn constraints_are_checked() {
        assert_eq!(
            parse_constraints(" node.role==worker ; node.labels.a != b ;").unwrap(),
            ["node.role==worker", "node.labels.a != b"]
        );
        for bad in ["node.role", "==x", "a==", "a==b,c==d"] {
            assert!(parse_constraint(bad).is_err(), "{bad}");
        }
        let mut c = SwarmConfig::with_defaults("o");
        c.accept_weaker_isolation = true;
        c.constraints = vec!["nope".into()];
        assert!(matches!(
            c.validate(),
            Err(SwarmConfigError::BadConstraint(_))
        ));
    }
}
