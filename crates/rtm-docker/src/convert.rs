//! Docker's inspect / list / event shapes → the port's value types.
//!
//! Pure functions, so the mapping rules (zero times, missing labels, the IP
//! on *our* network) are unit-tested without Docker.

use std::collections::HashMap;
use std::net::IpAddr;

use docker_api::models::{
    ContainerInspect200Response, ContainerSummary as DockerSummary, EventMessage,
};
use rtm_domain::ports::{
    ContainerEvent, ContainerEventKind, ContainerInfo, ContainerSummary, DockerHealth,
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

fn label(labels: Option<&HashMap<String, String>>, key: &str) -> String {
    labels.and_then(|l| l.get(key)).cloned().unwrap_or_default()
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
    let status = state.and_then(|s| s.status.clone()).unwrap_or_default();
    let running = state.and_then(|s| s.running).unwrap_or(false);
    // An exit code means something only once the process has ended;
    // Docker reports 0 for created and running containers too.
    let exit_code = matches!(status.as_str(), "exited" | "dead")
        .then(|| state.and_then(|s| s.exit_code).map(|c| c as i64))
        .flatten();
    let ip = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(network))
        .and_then(|e| e.ip_address.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    Ok(ContainerInfo {
        summary: ContainerSummary {
            id,
            name: info
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_owned(),
            game_id: game_label(labels),
            image_ref: label(labels, LABEL_IMAGE_REF),
            state_path: label(labels, LABEL_STATE_PATH),
            running,
            created_at: docker_time(info.created.as_deref()).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        },
        status,
        exit_code,
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        health: health(
            state
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status.as_deref()),
        ),
        ip,
        started_at: docker_time(state.and_then(|s| s.started_at.as_deref())),
        finished_at: docker_time(state.and_then(|s| s.finished_at.as_deref())),
    })
}

/// A listed container; `None` when Docker returned one without an id.
pub(crate) fn container_summary(c: &DockerSummary) -> Option<ContainerSummary> {
    let labels = c.labels.as_ref();
    Some(ContainerSummary {
        id: c.id.clone().and_then(ContainerId::new)?,
        name: c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        game_id: game_label(labels),
        image_ref: label(labels, LABEL_IMAGE_REF),
        state_path: label(labels, LABEL_STATE_PATH),
        running: c.state.as_deref() == Some("running"),
        created_at: c
            .created
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
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
        assert_eq!(container_event(&event("kill", &ours), "me"), None);
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
