//! Docker's inspect / list / event shapes → the port's value types.
//!
//! Pure functions, so the mapping rules (zero times, missing labels, the IP
//! on *our* network) are unit-tested without Docker.

use std::collections::HashMap;
use std::net::IpAddr;

use docker_api::models::{
    ContainerInspect200Response, ContainerSummary as DockerSummary, EndpointSettings, EventMessage,
};
use rtm_domain::ports::{
    ContainerEvent, ContainerEventKind, ContainerInfo, ContainerState, ContainerSummary,
    DockerHealth,
};
use rtm_domain::{ContainerId, GameId, RuntimeError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub const LABEL_MANAGED: &str = "rtm.managed";
pub const LABEL_GAME_ID: &str = "rtm.game_id";
pub const LABEL_OWNER: &str = "rtm.owner";
pub const LABEL_IMAGE_REF: &str = "rtm.image_ref";
pub const LABEL_STATE_PATH: &str = "rtm.state_path";

/// The labels of an inspected container (empty when it has none).
pub(crate) fn inspect_labels(
    info: &ContainerInspect200Response,
) -> Option<&HashMap<String, String>> {
    info.config.as_ref().and_then(|c| c.labels.as_ref())
}

/// Whether the inspected container carries `rtm.owner=<owner>`.
pub(crate) fn is_owned(info: &ContainerInspect200Response, owner: &str) -> bool {
    inspect_labels(info)
        .and_then(|l| l.get(LABEL_OWNER))
        .is_some_and(|o| o == owner)
}

/// Docker writes `0001-01-01T00:00:00Z` for "never"; that and anything
/// unparsable is `None`.
pub(crate) fn docker_time(s: Option<&str>) -> Option<OffsetDateTime> {
    let t = OffsetDateTime::parse(s?, &Rfc3339).ok()?;
    (t.year() > 1).then_some(t)
}

/// A label's value; `None` when it is missing or empty (the domain has
/// no empty-string sentinels).
fn label(labels: Option<&HashMap<String, String>>, key: &str) -> Option<String> {
    labels
        .and_then(|l| l.get(key))
        .filter(|v| !v.is_empty())
        .cloned()
}

/// Docker's `State.Status` word as the port's enum.
fn container_state(status: Option<&str>) -> ContainerState {
    match status {
        Some("created") => ContainerState::Created,
        Some("running") => ContainerState::Running,
        Some("paused") => ContainerState::Paused,
        Some("restarting") => ContainerState::Restarting,
        Some("removing") => ContainerState::Removing,
        Some("exited") => ContainerState::Exited,
        Some("dead") => ContainerState::Dead,
        _ => ContainerState::Unknown,
    }
}

/// Docker names containers `/rtm-g1`; the port's names never carry the
/// slash, and this is the one place that strips it.
fn container_name(name: &str) -> String {
    name.trim_start_matches('/').to_owned()
}

fn game_label(labels: Option<&HashMap<String, String>>) -> Option<GameId> {
    labels
        .and_then(|l| l.get(LABEL_GAME_ID))
        .and_then(|g| GameId::parse(g).ok())
}

fn health(status: Option<&str>) -> Option<DockerHealth> {
    match status? {
        "starting" => Some(DockerHealth::Starting),
        "healthy" => Some(DockerHealth::Healthy),
        "unhealthy" => Some(DockerHealth::Unhealthy),
        _ => None,
    }
}

/// Builds the port's view of an inspected container; `network` selects
/// which address is reported.
pub(crate) fn container_info(
    info: &ContainerInspect200Response,
    network: &str,
) -> Result<ContainerInfo, RuntimeError> {
    let id = info
        .id
        .clone()
        .and_then(ContainerId::new)
        .ok_or_else(|| RuntimeError::Other("inspect returned no container id".to_owned()))?;
    let labels = inspect_labels(info);
    let state = info.state.as_ref();
    let container_state = container_state(state.and_then(|s| s.status.as_deref()));
    let running = state.and_then(|s| s.running).unwrap_or(false);
    // An exit code means something only once the process has ended;
    // Docker reports 0 for created and running containers too.
    let exit_code = container_state
        .has_exited()
        .then(|| state.and_then(|s| s.exit_code).map(|c| c as i64))
        .flatten();
    let ip = network_ip(
        info.network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref()),
        network,
    );
    let docker_health = health(
        state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status.as_deref()),
    );
    Ok(ContainerInfo {
        summary: ContainerSummary {
            id,
            name: container_name(info.name.as_deref().unwrap_or_default()),
            game_id: game_label(labels),
            image_ref: label(labels, LABEL_IMAGE_REF),
            state_path: label(labels, LABEL_STATE_PATH),
            running,
            created_at: docker_time(info.created.as_deref()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
            health: docker_health,
            ip,
        },
        state: container_state,
        exit_code,
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        health: docker_health,
        ip,
        started_at: docker_time(state.and_then(|s| s.started_at.as_deref())),
        finished_at: docker_time(state.and_then(|s| s.finished_at.as_deref())),
    })
}

/// The address on `network` among a container's endpoints.
fn network_ip(
    networks: Option<&HashMap<String, EndpointSettings>>,
    network: &str,
) -> Option<IpAddr> {
    networks?
        .get(network)?
        .ip_address
        .as_deref()?
        .parse::<IpAddr>()
        .ok()
}

/// Docker's health as the list shows it: only inside the human-readable
/// `Status` ("Up 2 minutes (unhealthy)", "Up 3 seconds (health:
/// starting)"), and only while the container runs.
fn listed_health(status: Option<&str>) -> Option<DockerHealth> {
    let status = status?;
    if status.ends_with("(unhealthy)") {
        Some(DockerHealth::Unhealthy)
    } else if status.ends_with("(healthy)") {
        Some(DockerHealth::Healthy)
    } else if status.ends_with("(health: starting)") {
        Some(DockerHealth::Starting)
    } else {
        None
    }
}

/// A listed container; `None` when Docker returned one without an id.
/// `network` selects which address is reported.
pub(crate) fn container_summary(c: &DockerSummary, network: &str) -> Option<ContainerSummary> {
    let labels = c.labels.as_ref();
    let running = c.state.as_deref() == Some("running");
    Some(ContainerSummary {
        id: c.id.clone().and_then(ContainerId::new)?,
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| container_name(n))
            .unwrap_or_default(),
        game_id: game_label(labels),
        image_ref: label(labels, LABEL_IMAGE_REF),
        state_path: label(labels, LABEL_STATE_PATH),
        running,
        created_at: c
            .created
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        health: running
            .then(|| listed_health(c.status.as_deref()))
            .flatten(),
        // A stopped container keeps no address (Docker may list a stale
        // one): only a running container's address can be probed.
        ip: running
            .then(|| {
                network_ip(
                    c.network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref()),
                    network,
                )
            })
            .flatten(),
    })
}

/// Maps a Docker event of one of our containers; `None` for events we do
/// not report (other actions, other owners, malformed).
pub(crate) fn container_event(e: &EventMessage, owner: &str) -> Option<ContainerEvent> {
    if e.type_.as_deref() != Some("container") {
        return None;
    }
    let actor = e.actor.as_ref()?;
    let attrs = actor.attributes.as_ref();
    // The subscription already filters on the owner label; checking again
    // keeps the ownership rule local to this function.
    if attrs.and_then(|a| a.get(LABEL_OWNER)).map(String::as_str) != Some(owner) {
        return None;
    }
    let action = e.action.as_deref()?;
    let kind = match action {
        "start" => ContainerEventKind::Start,
        "die" => ContainerEventKind::Die {
            exit_code: attrs
                .and_then(|a| a.get("exitCode"))
                .and_then(|c| c.parse().ok()),
        },
        "oom" => ContainerEventKind::Oom,
        // Docker's own signal (`docker kill`, a stop's SIGTERM then
        // SIGKILL), numbered: `signal: "9"`.
        "kill" => ContainerEventKind::Kill {
            signal: attrs
                .and_then(|a| a.get("signal"))
                .and_then(|s| s.parse().ok()),
        },
        "destroy" => ContainerEventKind::Destroy,
        // Docker names the action `health_status: healthy` (with the
        // result after the colon).
        a => match a.strip_prefix("health_status:").map(str::trim) {
            Some(s) => ContainerEventKind::Health(health(Some(s))?),
            None => return None,
        },
    };
    let at = e
        .time_nano
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok())
        .or_else(|| {
            e.time
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        })
        .unwrap_or_else(OffsetDateTime::now_utc);
    Some(ContainerEvent {
        container_id: actor.id.clone().and_then(ContainerId::new)?,
        game_id: game_label(attrs),
        kind,
        at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, attrs: &[(&str, &str)]) -> EventMessage {
        serde_json::from_value(serde_json::json!({
            "Type": "container",
            "Action": action,
            "Actor": {
                "ID": "abc123",
                "Attributes": attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>(),
            },
            "time": 1_700_000_000,
            "timeNano": 1_700_000_000_123_456_789_i64,
        }))
        .expect("valid event JSON")
    }

    #[test]
    fn a_listed_container_carries_its_address_and_health() {
        let listed: DockerSummary = serde_json::from_value(serde_json::json!({
            "Id": "abc123",
            "Names": ["/rtm-g1"],
            "State": "running",
            "Status": "Up 2 minutes (unhealthy)",
            "Created": 1_700_000_000,
            "Labels": {"rtm.game_id": "g1", "rtm.image_ref": "e:1"},
            "NetworkSettings": {"Networks": {
                "other": {"IPAddress": "10.0.0.9"},
                "engines": {"IPAddress": "172.20.0.7"}
            }}
        }))
        .expect("valid list JSON");
        let s = container_summary(&listed, "engines").expect("mapped");
        assert_eq!(s.ip, "172.20.0.7".parse().ok());
        assert_eq!(s.health, Some(DockerHealth::Unhealthy));
        assert!(s.running);
        assert_eq!(s.name, "rtm-g1", "Docker's leading slash is stripped");
        assert_eq!(s.image_ref.as_deref(), Some("e:1"));
        assert_eq!(s.state_path, None, "a missing label is None, not \"\"");
        assert_eq!(
            container_summary(&listed, "absent").and_then(|s| s.ip),
            None
        );
        assert_eq!(
            listed_health(Some("Up 3 seconds (health: starting)")),
            Some(DockerHealth::Starting)
        );
        assert_eq!(
            listed_health(Some("Up 1 hour (healthy)")),
            Some(DockerHealth::Healthy)
        );
        assert_eq!(listed_health(Some("Up 1 hour")), None);
        let mut exited = listed.clone();
        exited.state = Some("exited".to_owned());
        exited.status = Some("Exited (1) 2 seconds ago".to_owned());
        let s = container_summary(&exited, "engines").expect("mapped");
        assert!(!s.running);
        assert_eq!((s.ip, s.health), (None, None));
    }

    #[test]
    fn docker_states_map_to_the_enum_and_back_to_dockers_word() {
        for word in [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ] {
            assert_eq!(container_state(Some(word)).as_str(), word);
        }
        assert_eq!(container_state(None), ContainerState::Unknown);
        assert_eq!(container_state(Some("new")), ContainerState::Unknown);
    }

    #[test]
    fn zero_time_is_none() {
        assert_eq!(docker_time(Some("0001-01-01T00:00:00Z")), None);
        assert_eq!(docker_time(None), None);
        assert_eq!(docker_time(Some("garbage")), None);
        let t = docker_time(Some("2026-11-28T20:03:00.123456789Z")).expect("parses");
        assert_eq!(t.nanosecond(), 123_456_789);
    }

    #[test]
    fn maps_events_of_our_owner_only() {
        let ours = [
            ("rtm.owner", "me"),
            ("rtm.game_id", "g1"),
            ("exitCode", "42"),
        ];
        let e = container_event(&event("die", &ours), "me").expect("mapped");
        assert_eq!(
            e.kind,
            ContainerEventKind::Die {
                exit_code: Some(42)
            }
        );
        assert_eq!(e.game_id, GameId::parse("g1").ok());
        assert_eq!(e.container_id.as_str(), "abc123");
        assert_eq!(e.at.unix_timestamp_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(container_event(&event("die", &ours), "other"), None);
        assert_eq!(
            container_event(&event("health_status: unhealthy", &ours), "me").map(|e| e.kind),
            Some(ContainerEventKind::Health(DockerHealth::Unhealthy))
        );
        assert_eq!(
            container_event(&event("oom", &ours), "me").map(|e| e.kind),
            Some(ContainerEventKind::Oom)
        );
        assert_eq!(
            container_event(
                &event("kill", &[("rtm.owner", "me"), ("signal", "9")]),
                "me"
            )
            .map(|e| e.kind),
            Some(ContainerEventKind::Kill { signal: Some(9) })
        );
        assert_eq!(
            container_event(
                &event("kill", &[("rtm.owner", "me"), ("signal", "KILL")]),
                "me"
            )
            .map(|e| e.kind),
            Some(ContainerEventKind::Kill { signal: None })
        );
        assert_eq!(container_event(&event("pause", &ours), "me"), None);
        assert_eq!(
            container_event(
                &event("destroy", &[("rtm.owner", "me"), ("rtm.game_id", "-bad")]),
                "me"
            )
            .map(|e| (e.kind, e.game_id)),
            Some((ContainerEventKind::Destroy, None))
        );
    }
}
