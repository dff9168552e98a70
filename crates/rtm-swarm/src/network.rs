//! The engines' network: an attachable overlay network, created when
//! missing, refused when a network of that name is something else, and
//! made again when it was removed while rtmanager runs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rtm_domain::RuntimeError;
use serde_json::{json, Value};

use crate::error::{classify, is_not_found, to_runtime, Failure};
use crate::runtime::SwarmRuntime;

/// Creates retried when the engines' network vanished, and the pause
/// before each retry (Swarm lists a removed network for a few seconds).
pub(crate) const NETWORK_TRIES: usize = 10;
pub(crate) const NETWORK_PAUSE: Duration = Duration::from_secs(1);

impl SwarmRuntime {
    /// Creates the engines' attachable overlay network unless it exists;
    /// refuses a network of that name that is not one. Swarm keeps
    /// network names unique, so concurrent creators get a 409, not a
    /// duplicate.
    pub(crate) async fn ensure_network(&self) -> Result<(), RuntimeError> {
        if self.inner.network_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let _serial = self.inner.network_lock.lock().await;
        let name = self.network();
        let what = format!("network {name}");
        let mut net = None;
        // A network created a moment ago (by an operator or a test) was
        // once read back here in another shape: look again, briefly,
        // before refusing it.
        for attempt in 0..3 {
            net = match self.api().network(name).await {
                Ok(net) => Some(net),
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(to_runtime(e, &what)),
            };
            match &net {
                Some(n) if !is_attachable_overlay(n) && attempt < 2 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => break,
            }
        }
        if let Some(net) = net {
            if !is_attachable_overlay(&net) {
                let field = |k: &str| net.get(k).map(Value::to_string).unwrap_or_default();
                return Err(RuntimeError::Other(format!(
                    "{what} exists but is not an attachable overlay network (driver {}, \
                     attachable {}, scope {}): engines on several nodes could not reach each \
                     other or be probed",
                    field("Driver"),
                    field("Attachable"),
                    field("Scope"),
                )));
            }
        } else {
            let body = json!({
                "Name": name, "Driver": "overlay", "Attachable": true, "CheckDuplicate": true,
                "Labels": { rtm_docker::labels::MANAGED: "true" },
            });
            match self.api().create_network(&body).await {
                Ok(()) => tracing::info!(network = %name, "created the engines' overlay network"),
                Err(e) if matches!(classify(&e), Failure::Status(409, _)) => {}
                Err(e) => return Err(to_runtime(e, &what)),
            }
        }
        self.inner.network_ready.store(true, Ordering::Release);
        Ok(())
    }
}

/// Docker's refusal of a spec whose network does not exist (a 500, or a
/// 404 on newer engines: "network <name> not found").
pub(crate) fn is_missing_network(e: &docker_api::Error) -> bool {
    matches!(classify(e), Failure::Status(_, m) if m.starts_with("network ") && m.ends_with("not found"))
}

fn is_attachable_overlay(net: &Value) -> bool {
    net.get("Driver").and_then(Value::as_str) == Some("overlay")
        && net.get("Attachable").and_then(Value::as_bool) == Some(true)
}
