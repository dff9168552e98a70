//! The Engine API's service and task shapes (the fields the adapter
//! reads), and their conversion into the port's value types.
//!
//! Pure functions, unit-tested without Docker. A service keeps its spec as
//! raw JSON so an update sends back every field Docker gave, known to this
//! crate or not.

use std::collections::HashMap;
use std::net::IpAddr;

use rtm_docker::labels;
use rtm_domain::ports::{ContainerInfo, ContainerState, ContainerSummary};
use rtm_domain::{ContainerId, GameId, RuntimeError};
use serde::Deserialize;
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The service label that holds the port's container name (`rtm-<game>`
/// or `rtmold-<game>`): Swarm cannot rename a service, and a change of a
/// service-level label does not redeploy its task.
pub const LABEL_NAME: &str = "rtm.name";

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Version {
    #[serde(rename = "Index")]
    pub index: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Service {
    #[serde(rename = "ID")]
    pub id: String,
    pub version: Version,
    pub created_at: Option<String>,
    pub spec: Value,
}

impl Service {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.spec
            .get("Labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn is_owned(&self, owner: &str) -> bool {
        self.label(labels::OWNER) == Some(owner)
    }

    /// The port's name: the `rtm.name` label, else the service's own name.
    pub fn port_name(&self) -> String {
        self.label(LABEL_NAME)
            .or_else(|| self.spec.get("Name").and_then(Value::as_str))
            .unwrap_or_default()
            .to_owned()
    }

    pub fn game_id(&self) -> Option<GameId> {
        self.label(labels::GAME_ID)
            .and_then(|g| GameId::parse(g).ok())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ContainerStatus {
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TaskStatus {
    pub timestamp: Option<String>,
    pub state: String,
    #[serde(default)]
    pub err: Option<String>,
    #[serde(default)]
    pub container_status: Option<ContainerStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AttachedNetwork {
    #[serde(default)]
    pub spec: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Attachment {
    pub network: AttachedNetwork,
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Task {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    pub created_at: Option<String>,
    #[serde(default)]
    pub desired_state: String,
    pub status: TaskStatus,
    #[serde(default)]
    pub networks_attachments: Vec<Attachment>,
}

/// Where a task is, in the port's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not running yet (new … starting).
    Pending,
    Running,
    /// Its container ran and ended (complete, failed, shutdown).
    Ended,
    /// It never ran or its node is gone (rejected, orphaned, remove…).
    Lost,
}

impl Task {
    pub fn phase(&self) -> Phase {
        match self.status.state.as_str() {
            "new" | "allocated" | "pending" | "assigned" | "accepted" | "preparing" | "ready"
            | "starting" => Phase::Pending,
            "running" => Phase::Running,
            "complete" | "failed" | "shutdown" => {
                if self.container_id().is_some() {
                    Phase::Ended
                } else {
                    Phase::Lost
                }
            }
            _ => Phase::Lost,
        }
    }

    /// The task's container, once it has one.
    pub fn container_id(&self) -> Option<&str> {
        self.status
            .container_status
            .as_ref()
            .map(|c| c.container_id.as_str())
            .filter(|c| !c.is_empty())
    }

    /// The exit code, only once the container ended (Docker reports 0
    /// for a running task and -1 for one being stopped).
    pub fn exit_code(&self) -> Option<i64> {
        if self.phase() != Phase::Ended {
            return None;
        }
        self.status
            .container_status
            .as_ref()
            .and_then(|c| c.exit_code)
    }

    pub fn created(&self) -> Option<OffsetDateTime> {
        time_of(self.created_at.as_deref())
    }

    pub fn status_at(&self) -> Option<OffsetDateTime> {
        time_of(self.status.timestamp.as_deref())
    }

    /// The task's address on `network`, while it runs.
    pub fn ip_on(&self, network: &str) -> Option<IpAddr> {
        if self.phase() != Phase::Running {
            return None;
        }
        self.networks_attachments
            .iter()
            .filter(|a| {
                a.network
                    .spec
                    .as_ref()
                    .and_then(|s| s.get("Name"))
                    .and_then(Value::as_str)
                    == Some(network)
            })
            .flat_map(|a| a.addresses.iter())
            .find_map(|cidr| cidr.split('/').next()?.parse().ok())
    }
}

/// Docker's time stamps; `0001-01-01…` ("never") and junk are `None`.
pub(crate) fn time_of(s: Option<&str>) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s?, &Rfc3339).ok()?;
    (t.year() > 1).then_some(t)
}

/// The service's newest task (by creation time; ties by id, so every
/// reader picks the same one).
pub(crate) fn newest<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Option<&'a Task> {
    tasks
        .into_iter()
        .max_by(|a, b| (a.created(), a.id.as_str()).cmp(&(b.created(), b.id.as_str())))
}

/// Every task by its service id, newest first is not guaranteed.
pub(crate) fn by_service(tasks: Vec<Task>) -> HashMap<String, Vec<Task>> {
    let mut out: HashMap<String, Vec<Task>> = HashMap::new();
    for t in tasks {
        out.entry(t.service_id.clone()).or_default().push(t);
    }
    out
}

/// What only the task's own node knows, read from its local container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LocalFacts {
    /// The container runs now (Swarm learns of its end a moment later).
    pub running: bool,
    pub oom_killed: bool,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// When `task` ended, as well as it is known: its node's own record of
/// the container's end, else the time Swarm recorded its final state;
/// `None` for a task not (yet) ended.
pub(crate) fn ended_at(task: &Task, local: Option<&LocalFacts>) -> Option<OffsetDateTime> {
    if !matches!(task.phase(), Phase::Ended | Phase::Lost) {
        return None;
    }
    local
        .and_then(|l| l.finished_at)
        .or_else(|| task.status_at())
}

pub(crate) fn summary(
    svc: &Service,
    task: Option<&Task>,
    network: &str,
) -> Result<ContainerSummary, RuntimeError> {
    let id = ContainerId::new(svc.id.clone())
        .ok_or_else(|| RuntimeError::Other("a service without an id".to_owned()))?;
    let running = task.is_some_and(|t| t.phase() == Phase::Running);
    Ok(ContainerSummary {
        id,
        name: svc.port_name(),
        game_id: svc.game_id(),
        image_ref: svc.label(labels::IMAGE_REF).map(str::to_owned),
        state_path: svc.label(labels::STATE_PATH).map(str::to_owned),
        running,
        created_at: time_of(svc.created_at.as_deref()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        // Docker's own health check is node-local: not known from a manager.
        health: None,
        ip: task.and_then(|t| t.ip_on(network)),
    })
}

/// The port's view of a service and its newest task. `remembered` is an
/// exit this process saw for a task Swarm has since deleted (a scale to
/// 0 reaps it); `local` what the task's own node said, when it is ours.
pub(crate) fn info(
    svc: &Service,
    task: Option<&Task>,
    network: &str,
    remembered: Option<Option<i64>>,
    local: Option<&LocalFacts>,
) -> Result<ContainerInfo, RuntimeError> {
    let summary = summary(svc, task, network)?;
    let (state, exit_code, started_at, finished_at) = match task {
        None => match remembered {
            // Stopped by a scale to 0: the task is gone, its exit is not.
            Some(code) => (ContainerState::Exited, code, None, None),
            None => (ContainerState::Created, None, None, None),
        },
        Some(t) => match t.phase() {
            Phase::Pending => (ContainerState::Created, None, None, None),
            Phase::Running => (ContainerState::Running, None, t.status_at(), None),
            Phase::Ended => (
                ContainerState::Exited,
                t.exit_code(),
                local.and_then(|l| l.started_at),
                local.and_then(|l| l.finished_at).or_else(|| t.status_at()),
            ),
            Phase::Lost => (ContainerState::Dead, None, None, t.status_at()),
        },
    };
    let started_at = match (started_at, local) {
        (Some(t), _) => Some(t),
        (None, Some(l)) => l.started_at,
        (None, None) => None,
    };
    Ok(ContainerInfo {
        ip: summary.ip,
        health: None,
        summary,
        state,
        exit_code,
        oom_killed: local.is_some_and(|l| l.oom_killed),
        started_at,
        finished_at,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(state: &str, container: &str, exit: i64) -> Task {
        serde_json::from_value(json!({
            "ID": "t1", "ServiceID": "s1", "NodeID": "n1",
            "CreatedAt": "2026-12-01T22:00:00.5Z", "DesiredState": "running",
            "Status": {"Timestamp": "2026-12-01T22:00:01Z", "State": state,
                       "ContainerStatus": {"ContainerID": container, "ExitCode": exit}},
            "NetworksAttachments": [
                {"Network": {"Spec": {"Name": "other"}}, "Addresses": ["10.9.0.2/24"]},
                {"Network": {"Spec": {"Name": "net"}}, "Addresses": ["10.0.1.3/24"]}
            ]
        }))
        .unwrap()
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "ID": "s1", "Version": {"Index": 7}, "CreatedAt": "2026-12-01T21:59:00Z",
            "Spec": {"Name": "rtm-g-1a2b", "Labels": {"rtm.owner": "o", "rtm.name": "rtmold-g",
                     "rtm.game_id": "g", "rtm.image_ref": "", "rtm.state_path": "/s/g"},
                     "Mode": {"Replicated": {"Replicas": 1}}}
        }))
        .unwrap()
    }

    #[test]
    fn task_phases_and_exit_codes() {
        let running = task("running", "c1", 0);
        assert_eq!(running.phase(), Phase::Running);
        assert_eq!(
            running.exit_code(),
            None,
            "0 of a running task means nothing"
        );
        assert_eq!(running.ip_on("net"), Some("10.0.1.3".parse().unwrap()));
        let done = task("failed", "c1", 3);
        assert_eq!(done.phase(), Phase::Ended);
        assert_eq!(done.exit_code(), Some(3));
        assert_eq!(done.ip_on("net"), None);
        assert_eq!(task("rejected", "", 0).phase(), Phase::Lost);
        assert_eq!(
            task("shutdown", "", 0).phase(),
            Phase::Lost,
            "never had a container"
        );
        assert_eq!(task("preparing", "", 0).phase(), Phase::Pending);
    }

    #[test]
    fn a_service_reads_as_its_port_name_and_labels() {
        let s = service();
        assert!(s.is_owned("o") && !s.is_owned("p"));
        let i = info(&s, Some(&task("complete", "c1", 0)), "net", None, None).unwrap();
        assert_eq!(i.summary.name, "rtmold-g");
        assert_eq!(i.summary.image_ref, None, "an empty label is none");
        assert_eq!(i.state, ContainerState::Exited);
        assert_eq!(i.exit_code, Some(0));
        assert!(i.finished_at.is_some());
        assert!(!i.oom_killed, "never guessed");
    }

    #[test]
    fn a_reaped_task_is_exited_with_the_remembered_code_else_created() {
        let s = service();
        assert_eq!(
            info(&s, None, "net", None, None).unwrap().state,
            ContainerState::Created
        );
        let i = info(&s, None, "net", Some(Some(0)), None).unwrap();
        assert_eq!((i.state, i.exit_code), (ContainerState::Exited, Some(0)));
    }

    #[test]
    fn an_end_is_dated_by_its_node_else_by_swarm_and_a_live_task_not_at_all() {
        let done = task("failed", "c1", 3);
        assert_eq!(ended_at(&done, None), time_of(Some("2026-12-01T22:00:01Z")));
        let local = LocalFacts {
            finished_at: time_of(Some("2026-12-01T22:00:00.9Z")),
            ..LocalFacts::default()
        };
        assert_eq!(ended_at(&done, Some(&local)), local.finished_at);
        assert_eq!(ended_at(&task("running", "c1", 0), Some(&local)), None);
    }

    #[test]
    fn local_facts_give_oom_and_times() {
        let local = LocalFacts {
            running: false,
            oom_killed: true,
            started_at: time_of(Some("2026-12-01T22:00:00Z")),
            finished_at: None,
        };
        let i = info(
            &service(),
            Some(&task("failed", "c", 137)),
            "net",
            None,
            Some(&local),
        )
        .unwrap();
        assert!(i.oom_killed);
        assert_eq!(i.exit_code, Some(137));
        assert!(i.started_at.is_some());
    }
}
