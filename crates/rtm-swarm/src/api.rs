//! The Engine API's swarm endpoints, over docker-api's own transport.
//!
//! docker-api 0.14 has service and task endpoints, but its service
//! builder cannot express the lockdown (capabilities, read-only root,
//! init, pids) and its typed models would drop the fields an update must
//! send back. So, exactly as rtm-docker posts its container create body,
//! these calls go through rtm-docker's [`CreateClient`] (containers-api's
//! `RequestClient` on the transport docker-api uses): one Docker client,
//! one HTTP stack. Bodies are raw JSON; answers are read into
//! [`crate::model`]'s types.

use containers_api::conn::{Headers, Payload};
use docker_api::Error as DockerError;
use rtm_docker::CreateClient;
use serde_json::{json, Value};

use crate::model::{Service, Task};

/// docker-api's header name for registry credentials.
const AUTH_HEADER: &str = "X-Registry-Auth";

/// `filters` as a query value: `{"label":["a=b"],"service":["id"]}`.
fn filters(pairs: &[(&str, Vec<String>)]) -> String {
    let mut map = serde_json::Map::new();
    for (key, values) in pairs {
        map.insert((*key).to_owned(), json!(values));
    }
    url::form_urlencoded::byte_serialize(Value::Object(map).to_string().as_bytes()).collect()
}

fn path_part(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn headers(auth: Option<String>) -> Option<Headers> {
    auth.map(|a| Headers::single(AUTH_HEADER, a))
}

#[derive(Debug)]
pub(crate) struct SwarmApi {
    raw: CreateClient,
}

impl SwarmApi {
    pub fn new(raw: CreateClient) -> Self {
        Self { raw }
    }

    pub fn client(&self) -> &containers_api::conn::RequestClient<DockerError> {
        self.raw.client()
    }

    /// `GET /tasks/{id}/logs?…`: the task's output as docker-api decodes
    /// container logs (frames per stream), served by the task's node.
    pub fn task_logs(
        &self,
        task: &str,
        opts: &docker_api::opts::LogsOpts,
    ) -> impl futures_util::Stream<Item = Result<containers_api::conn::TtyChunk, DockerError>>
           + Unpin
           + Send
           + '_ {
        use futures_util::TryStreamExt;
        let mut ep = format!("/tasks/{}/logs", path_part(task));
        if let Some(q) = opts.serialize() {
            ep = format!("{ep}?{q}");
        }
        // docker-api's own shape for log streams (its `Logs` endpoints).
        let bytes = Box::pin(
            self.client()
                .get_stream(ep)
                .map_err(|e| containers_api::conn::Error::Any(Box::new(e))),
        );
        Box::pin(containers_api::conn::tty::decode(bytes).map_err(DockerError::Error))
    }

    /// `GET /info`, raw.
    pub async fn info(&self) -> Result<Value, DockerError> {
        self.raw.client().get_json("/info").await
    }

    /// Services carrying every `label` (`key=value`).
    pub async fn services(&self, label: Vec<String>) -> Result<Vec<Service>, DockerError> {
        let q = filters(&[("label", label)]);
        self.raw
            .client()
            .get_json(format!("/services?filters={q}"))
            .await
    }

    pub async fn service(&self, id: &str) -> Result<Service, DockerError> {
        self.raw
            .client()
            .get_json(format!("/services/{}", path_part(id)))
            .await
    }

    /// The tasks of these services (every task Swarm still keeps).
    pub async fn tasks(&self, services: Vec<String>) -> Result<Vec<Task>, DockerError> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let q = filters(&[("service", services)]);
        self.raw
            .client()
            .get_json(format!("/tasks?filters={q}"))
            .await
    }

    pub async fn task(&self, id: &str) -> Result<Task, DockerError> {
        self.raw
            .client()
            .get_json(format!("/tasks/{}", path_part(id)))
            .await
    }

    /// `POST /services/create`; the new service's id.
    pub async fn create_service(
        &self,
        body: &Value,
        auth: Option<String>,
    ) -> Result<String, DockerError> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "ID")]
            id: String,
        }
        let created: Created = self
            .raw
            .client()
            .post_json(
                "/services/create",
                Payload::Json(body.to_string()),
                headers(auth),
            )
            .await?;
        Ok(created.id)
    }

    /// `POST /services/{id}/update?version=…` with the whole new spec.
    pub async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &Value,
        auth: Option<String>,
    ) -> Result<(), DockerError> {
        let _: Value = self
            .raw
            .client()
            .post_json(
                format!("/services/{}/update?version={version}", path_part(id)),
                Payload::Json(spec.to_string()),
                headers(auth),
            )
            .await?;
        Ok(())
    }

    pub async fn delete_service(&self, id: &str) -> Result<(), DockerError> {
        self.raw
            .client()
            .delete(format!("/services/{}", path_part(id)))
            .await
            .map(drop)
    }

    pub async fn network(&self, name: &str) -> Result<Value, DockerError> {
        self.raw
            .client()
            .get_json(format!("/networks/{}", path_part(name)))
            .await
    }

    pub async fn create_network(&self, body: &Value) -> Result<(), DockerError> {
        let _: Value = self
            .raw
            .client()
            .post_json(
                "/networks/create",
                Payload::Json(body.to_string()),
                Headers::none(),
            )
            .await?;
        Ok(())
    }
}

impl SwarmApi {
    /// `GET` of a local container path, raw.
    pub(crate) async fn raw_get(&self, path: &str) -> Result<Value, docker_api::Error> {
        self.client().get_json(path).await
    }

    /// An empty `POST` (a container stop).
    pub(crate) async fn raw_post(&self, path: &str) -> Result<(), docker_api::Error> {
        self.client()
            .post(path, Payload::empty(), Headers::none())
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_url_encoded_json() {
        let q = filters(&[("label", vec!["rtm.owner=o".into()])]);
        let decoded: String = url::form_urlencoded::parse(format!("f={q}").as_bytes())
            .map(|(_, v)| v.into_owned())
            .collect();
        assert_eq!(decoded, r#"{"label":["rtm.owner=o"]}"#);
    }
}
