//! Container creation with the full lockdown, through docker-api's own
//! transport stack.
//!
//! docker-api 0.14's create builder has no setter for `CapDrop`, `CapAdd`,
//! `ReadonlyRootfs`, `Tmpfs`, `PidsLimit` or `Init`, and its request
//! methods are crate-private. So [`lockdown`] adds those fields to the body
//! the builder serialises, and [`CreateClient`] posts it with
//! containers-api's `RequestClient` over the same `Transport` docker-api
//! uses (which it re-exports): one Docker client, one HTTP stack, just a
//! second handle on it for this one call. Everything else (start, inspect,
//! remove…) stays on docker-api.

use std::pin::Pin;

use containers_api::conn::hyper::{self, Body, Response};
use containers_api::conn::{Headers, Payload, RequestClient, Transport};
use docker_api::Error as DockerError;
use serde_json::{json, Value};

use crate::config::{DockerConfigError, Endpoint};

/// What every engine container gets on top of the builder's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lockdown {
    /// Capabilities added back after dropping all (canonical names).
    pub cap_add: Vec<String>,
    /// Size cap of the `/tmp` tmpfs, bytes.
    pub tmpfs_bytes: u64,
    pub pids_limit: u32,
}

/// Adds the lockdown fields to a create body's `HostConfig`.
pub(crate) fn lockdown(body: &mut Value, l: &Lockdown) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    let host = obj.entry("HostConfig").or_insert_with(|| json!({}));
    let Some(host) = host.as_object_mut() else {
        return;
    };
    host.insert("CapDrop".into(), json!(["ALL"]));
    if !l.cap_add.is_empty() {
        host.insert("CapAdd".into(), json!(l.cap_add));
    }
    host.insert("ReadonlyRootfs".into(), json!(true));
    // The only writable places are the state directory (a bind) and this
    // tmpfs. noexec: nothing downloaded at run time can be executed from
    // it; mode 1777: the non-root engine user can write it.
    host.insert(
        "Tmpfs".into(),
        json!({ "/tmp": format!("rw,noexec,nosuid,nodev,mode=1777,size={}", l.tmpfs_bytes) }),
    );
    host.insert("PidsLimit".into(), json!(l.pids_limit));
    // Docker's init (tini) as PID 1: it reaps the engine's orphaned
    // children and forwards signals, so an engine that spawns helpers
    // neither leaks zombies nor has to handle being PID 1.
    host.insert("Init".into(), json!(true));
}

/// Posts create bodies over docker-api's transport.
#[derive(Debug)]
pub struct CreateClient {
    client: RequestClient<DockerError>,
}

impl CreateClient {
    /// A client on `endpoint`'s transport, with docker-api's error rule.
    pub fn new(endpoint: &Endpoint) -> Result<Self, DockerConfigError> {
        let transport = match endpoint {
            Endpoint::Unix(path) => Transport::Unix {
                client: hyper::Client::builder().build(hyperlocal::UnixConnector),
                path: path.clone(),
            },
            Endpoint::Tcp(authority) => Transport::Tcp {
                client: hyper::Client::new(),
                host: url::Url::parse(&format!("tcp://{authority}"))
                    .map_err(|_| DockerConfigError::BadHost(format!("tcp://{authority}")))?,
            },
        };
        Ok(Self {
            client: RequestClient::new(transport, Box::new(validate)),
        })
    }

    /// The request client itself, for other raw Engine API calls whose
    /// bodies docker-api's builders cannot express (the Swarm adapter's
    /// service specs). Its errors are docker-api's, shaped like its own.
    pub fn client(&self) -> &RequestClient<DockerError> {
        &self.client
    }

    /// `POST /containers/create?name=<name>` with `body`; the new id.
    /// Errors are docker-api's, shaped like its own (a non-2xx answer is
    /// `Error::Fault` with Docker's message), so the adapter's error
    /// translation applies unchanged.
    pub(crate) async fn create(&self, name: &str, body: &Value) -> Result<String, DockerError> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let name: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let created: Created = self
            .client
            .post_json(
                format!("/containers/create?name={name}"),
                Payload::Json(body.to_string()),
                Headers::none(),
            )
            .await?;
        Ok(created.id)
    }
}

/// The future a `RequestClient` validation function returns.
type Validated =
    Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, DockerError>> + Send + Sync>>;

/// docker-api's rule: a 2xx passes; anything else becomes
/// `Error::Fault` with the `message` of Docker's JSON error body.
fn validate(response: Response<Body>) -> Validated {
    Box::pin(async move {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let bytes = hyper::body::to_bytes(response.into_body())
            .await
            .map_err(DockerError::Hyper)?;
        let message = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        Err(DockerError::Fault {
            code: status,
            message,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockdown_sets_every_field() {
        let mut body = json!({"Image": "x", "HostConfig": {"Privileged": false}});
        lockdown(
            &mut body,
            &Lockdown {
                cap_add: vec!["NET_BIND_SERVICE".into()],
                tmpfs_bytes: 64 << 20,
                pids_limit: 256,
            },
        );
        let hc = &body["HostConfig"];
        assert_eq!(hc["Privileged"], false, "builder fields are kept");
        assert_eq!(hc["CapDrop"], json!(["ALL"]));
        assert_eq!(hc["CapAdd"], json!(["NET_BIND_SERVICE"]));
        assert_eq!(hc["ReadonlyRootfs"], true);
        assert_eq!(
            hc["Tmpfs"]["/tmp"],
            "rw,noexec,nosuid,nodev,mode=1777,size=67108864"
        );
        assert_eq!(hc["PidsLimit"], 256);
        assert_eq!(hc["Init"], true);
    }

    #[test]
    fn no_cap_add_without_an_allow_list() {
        let mut body = json!({});
        lockdown(
            &mut body,
            &Lockdown {
                cap_add: vec![],
                tmpfs_bytes: 1 << 20,
                pids_limit: 8,
            },
        );
        assert!(body["HostConfig"].get("CapAdd").is_none());
        assert_eq!(body["HostConfig"]["CapDrop"], json!(["ALL"]));
    }
}
