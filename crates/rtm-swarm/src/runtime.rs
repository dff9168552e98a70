//! [`SwarmRuntime`]: the [`ContainerRuntime`] port on Docker Swarm.
//!
//! One port "container" is one **service** with at most one replica and
//! restart condition `none`; the port's [`ContainerId`] is the service id,
//! which stays the same across stop and start (each start runs a new
//! task). Guarantees, beyond the port's contracts:
//! - ownership: every call that names a service reads it first and acts
//!   only when it carries `rtm.owner=<owner>` (else `NotFound`), then uses
//!   the full id from that read;
//! - the port's name lives in the `rtm.name` service label (Swarm cannot
//!   rename a service; a label change does not touch the task), the
//!   service's own name is that name plus a random suffix, and the task is
//!   reachable as the port's name on the engines' overlay network;
//! - what only the task's node knows (OOM, exact start and end times, a
//!   stop with the request's grace, logs) is read from the local engine
//!   when the task runs on this manager's node, and never guessed
//!   otherwise.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use rtm_docker::{CreateClient, CredentialsFile, DockerRuntime};
use rtm_domain::ports::{
    ContainerInfo, ContainerLogs, ContainerRuntime, ContainerSpec, ContainerSummary, FeedItem,
    LogLine, LogQuery,
};
use rtm_domain::{ContainerId, GameId, ImageRef, RuntimeError};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::api::SwarmApi;
use crate::config::{SwarmConfig, SwarmConfigError};
use crate::error::{classify, is_out_of_sequence, to_runtime, Failure};
use crate::feed::{self, Observed};
use crate::logs::Source;
use crate::model::{self, LocalFacts, Phase, Service, Task, LABEL_NAME};
use crate::names::{check_state_path, prepare_state_dir, service_name};
use crate::network::{is_missing_network, NETWORK_PAUSE, NETWORK_TRIES};
use crate::spec;

/// Service-level labels a stop through the orchestrator leaves behind:
/// Swarm deletes a task scaled away, so its end is kept on the service.
pub(crate) const LABEL_LAST_TASK: &str = "rtm.last_task";
/// The exit code of that task, or `unknown`.
pub(crate) const LABEL_LAST_EXIT: &str = "rtm.last_exit";
/// When that task ended (RFC 3339): the feed dates its end with it, so a
/// late report is never taken for the end of a later start.
pub(crate) const LABEL_LAST_END: &str = "rtm.last_end";

/// How long a removal waits for this node to remove the service's task
/// containers.
const REMOVE_WAIT: Duration = Duration::from_secs(15);

/// How often a wait looks at the tasks again.
pub(crate) const TASK_POLL: Duration = Duration::from_millis(100);
/// How many times an update is retried when another update landed first.
const UPDATE_TRIES: usize = 5;
/// Observations kept for a slow feed before it falls back on its polling.
const JOURNAL: usize = 1024;

/// The Swarm adapter. Cheap to clone: clones share one client.
#[derive(Debug, Clone)]
pub struct SwarmRuntime {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: SwarmConfig,
    pub(crate) api: SwarmApi,
    /// The single-host adapter on the same engine, for what happens on
    /// this node: image pulls, state directories, a local task's logs.
    local: DockerRuntime,
    credentials: Option<CredentialsFile>,
    node_id: tokio::sync::OnceCell<String>,
    pub(crate) network_ready: AtomicBool,
    pub(crate) network_lock: tokio::sync::Mutex<()>,
    /// What this process's own calls saw happen, for its feeds (a task
    /// that ran and ended between two polls is not missed).
    pub(crate) journal: broadcast::Sender<Observed>,
}

impl SwarmRuntime {
    /// Validates `config` (see [`SwarmConfig::validate`]) and builds the
    /// client. Does not contact Docker; [`ContainerRuntime::ping`] also
    /// checks that the engine is a swarm manager.
    pub fn new(config: SwarmConfig) -> Result<Self, SwarmConfigError> {
        config.validate()?;
        let local = DockerRuntime::new(config.docker.clone())?;
        let endpoint = config.docker.host.endpoint();
        let api = SwarmApi::new(CreateClient::new(endpoint)?);
        let credentials = config
            .docker
            .registry_auth_file
            .as_deref()
            .map(CredentialsFile::open)
            .transpose()
            .map_err(rtm_docker::DockerConfigError::from)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                api,
                local,
                credentials,
                node_id: tokio::sync::OnceCell::new(),
                network_ready: AtomicBool::new(false),
                network_lock: tokio::sync::Mutex::new(()),
                journal: broadcast::channel(JOURNAL).0,
            }),
        })
    }

    pub fn config(&self) -> &SwarmConfig {
        &self.inner.config
    }

    pub(crate) fn api(&self) -> &SwarmApi {
        &self.inner.api
    }

    pub(crate) fn network(&self) -> &str {
        &self.inner.config.docker.network
    }

    pub(crate) fn publish(&self, o: Observed) {
        // No feed open: nobody to tell.
        let _ = self.inner.journal.send(o);
    }

    /// The service `id`, only when it is ours.
    pub(crate) async fn owned(&self, id: &ContainerId) -> Result<Service, RuntimeError> {
        let svc = self
            .api()
            .service(id.as_str())
            .await
            .map_err(|e| to_runtime(e, &format!("service {id}")))?;
        if !svc.is_owned(&self.inner.config.docker.owner) {
            // Indistinguishable from a missing service on purpose.
            return Err(RuntimeError::NotFound(format!("service {id}")));
        }
        Ok(svc)
    }

    pub(crate) async fn tasks_of(&self, service: &str) -> Result<Vec<Task>, RuntimeError> {
        self.api()
            .tasks(vec![service.to_owned()])
            .await
            .map_err(|e| to_runtime(e, &format!("tasks of service {service}")))
    }

    /// Every owned service, of one game when `game` is set.
    pub(crate) async fn owned_services(
        &self,
        game: Option<&GameId>,
    ) -> Result<Vec<Service>, RuntimeError> {
        let mut label = vec![format!(
            "{}={}",
            rtm_docker::labels::OWNER,
            self.inner.config.docker.owner
        )];
        if let Some(game) = game {
            label.push(format!("{}={game}", rtm_docker::labels::GAME_ID));
        }
        self.api()
            .services(label)
            .await
            .map_err(|e| to_runtime(e, "list services"))
    }

    /// This engine's swarm node id (asked once).
    pub(crate) async fn node_id(&self) -> Result<&str, RuntimeError> {
        self.inner
            .node_id
            .get_or_try_init(|| async {
                let info = self
                    .api()
                    .info()
                    .await
                    .map_err(|e| to_runtime(e, "docker info"))?;
                info.pointer("/Swarm/NodeID")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .ok_or_else(|| RuntimeError::Other(NOT_A_MANAGER.to_owned()))
            })
            .await
            .map(String::as_str)
    }

    /// The task's container when it is on this node.
    pub(crate) async fn local_container<'t>(&self, task: &'t Task) -> Option<&'t str> {
        if !self.inner.config.local_engine {
            return None;
        }
        let here = self.node_id().await.ok()?;
        (task.node_id == here)
            .then(|| task.container_id())
            .flatten()
    }

    /// The newest task, when Swarm still lists it running while its
    /// container, on this node, has already ended.
    async fn ending_here(&self, tasks: &[Task]) -> Option<String> {
        let t = model::newest(tasks)?;
        if t.phase() != Phase::Running {
            return None;
        }
        let local = self.local_facts(t).await?;
        (!local.running).then(|| t.id.clone())
    }

    /// What this node's engine says about the task's container, when it is
    /// here (else `None`: not known, never guessed).
    pub(crate) async fn local_facts(&self, task: &Task) -> Option<LocalFacts> {
        let cid = self.local_container(task).await?;
        let c: Value = self
            .inner
            .api
            .raw_get(&format!("/containers/{cid}/json"))
            .await
            .ok()?;
        let time = |k: &str| model::time_of(c.pointer(&format!("/State/{k}"))?.as_str());
        Some(LocalFacts {
            running: c
                .pointer("/State/Running")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            oom_killed: c
                .pointer("/State/OOMKilled")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            started_at: time("StartedAt"),
            finished_at: time("FinishedAt"),
        })
    }

    /// `X-Registry-Auth` for `image`'s registry, when credentials are
    /// configured: the node that runs the task pulls with it (what
    /// `docker service create --with-registry-auth` sends).
    fn auth_for(&self, image: Option<&str>) -> Option<String> {
        let image = ImageRef::parse(image?).ok()?;
        let credential = self.inner.credentials.as_ref()?.get(image.registry())?;
        Some(credential.registry_auth(image.registry()).serialize())
    }

    /// Reads the service, applies `change` to its spec and sends it back,
    /// again with a fresh read when another update landed in between.
    pub(crate) async fn update(
        &self,
        id: &str,
        what: &str,
        change: impl Fn(&mut Value),
    ) -> Result<(), RuntimeError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let svc = self
                .api()
                .service(id)
                .await
                .map_err(|e| to_runtime(e, what))?;
            let mut spec = svc.spec.clone();
            change(&mut spec);
            let auth = self.auth_for(svc.label(rtm_docker::labels::IMAGE_REF));
            match self
                .api()
                .update_service(id, svc.version.index, &spec, auth)
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if is_out_of_sequence(&e) && tries < UPDATE_TRIES => continue,
                Err(e) => return Err(to_runtime(e, what)),
            }
        }
    }

    /// Another owned service that carries the port name `name`.
    async fn name_taken(&self, name: &str, except: Option<&str>) -> Result<bool, RuntimeError> {
        let label = vec![
            format!(
                "{}={}",
                rtm_docker::labels::OWNER,
                self.inner.config.docker.owner
            ),
            format!("{LABEL_NAME}={name}"),
        ];
        let found = self
            .api()
            .services(label)
            .await
            .map_err(|e| to_runtime(e, "list services"))?;
        Ok(found.iter().any(|s| Some(s.id.as_str()) != except))
    }

    /// Polls the service's tasks every `poll` until `done` says so, for
    /// at most `limit`.
    pub(crate) async fn wait_tasks<T>(
        &self,
        service: &str,
        (limit, poll): (Duration, Duration),
        what: &str,
        mut done: impl FnMut(&[Task]) -> Option<T>,
    ) -> Result<T, RuntimeError> {
        let deadline = Instant::now() + limit;
        loop {
            let tasks = self.tasks_of(service).await?;
            if let Some(v) = done(&tasks) {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::Other(format!(
                    "{what}: not done within {limit:?}"
                )));
            }
            tokio::time::sleep(poll).await;
        }
    }
}

const NOT_A_MANAGER: &str =
    "this Docker engine is not a swarm manager: RTM_RUNTIME=swarm needs a manager's Engine API";

impl ContainerRuntime for SwarmRuntime {
    /// `Ok` when the engine answered, is a swarm manager, and this
    /// process is attached to the engines' network (`attach.rs`): without
    /// it, probes would reach whatever the host routes there.
    async fn ping(&self) -> Result<(), RuntimeError> {
        let info = self
            .api()
            .info()
            .await
            .map_err(|e| to_runtime(e, "docker info"))?;
        let active = info
            .pointer("/Swarm/LocalNodeState")
            .and_then(Value::as_str)
            == Some("active");
        let manager = info
            .pointer("/Swarm/ControlAvailable")
            .and_then(Value::as_bool)
            == Some(true);
        if !(active && manager) {
            return Err(RuntimeError::Other(NOT_A_MANAGER.to_owned()));
        }
        self.check_attached().await
    }

    /// Pulls on this manager's node (checking the reference and the
    /// credentials early, with the single-host adapter's rules); the node
    /// that runs a task pulls there itself, with the registry credentials
    /// sent along with the service.
    async fn ensure_image(&self, image: &ImageRef) -> Result<(), RuntimeError> {
        self.inner.local.ensure_image(image).await
    }

    async fn remove_state(&self, path: &str) -> Result<(), RuntimeError> {
        self.inner.local.remove_state(path).await
    }

    /// A service per SPEC §5 in Swarm's words (see `spec.rs`), with no
    /// replica yet. `Conflict` when an owned service already carries the
    /// name.
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        check_state_path(&spec.state_path)?;
        self.ensure_network().await?;
        let path = std::path::PathBuf::from(&spec.state_path);
        let user = self.inner.config.docker.engine_user;
        tokio::task::spawn_blocking(move || prepare_state_dir(&path, user.uid(), user.gid()))
            .await
            .map_err(|e| RuntimeError::Other(format!("state directory task failed: {e}")))??;
        if self.name_taken(&spec.name, None).await? {
            return Err(RuntimeError::Conflict(format!(
                "create {}: the name is taken by another service",
                spec.name
            )));
        }
        let body = spec::service_spec(&self.inner.config, spec, &service_name(&spec.name));
        let auth = self.auth_for(Some(&spec.image.to_string()));
        let mut tries = 0;
        let id = loop {
            tries += 1;
            match self.api().create_service(&body, auth.clone()).await {
                Ok(id) => break id,
                // The network was removed since it was last seen. Swarm
                // removes a network lazily (it is still listed for about
                // three seconds after `docker network rm` returns, seen on
                // 20.10), so the check
                // (which creates it once it is really gone) is repeated,
                // a bounded number of times.
                Err(e) if is_missing_network(&e) && tries < NETWORK_TRIES => {
                    self.inner.network_ready.store(false, Ordering::Release);
                    tokio::time::sleep(NETWORK_PAUSE).await;
                    self.ensure_network().await?;
                }
                Err(e) => return Err(to_runtime(e, &format!("create {}", spec.name))),
            }
        };
        ContainerId::new(id)
            .ok_or_else(|| RuntimeError::Other("create returned an empty id".to_owned()))
    }

    /// Runs a task (scale 0 → 1, or a forced update when the last task
    /// ended), reachable under the service's current port name, and waits
    /// until it runs. A running task is Ok.
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let svc = self.owned(id).await?;
        let what = format!("start service {id}");
        let mut tasks = self.tasks_of(&svc.id).await?;
        if let Some(ending) = self.ending_here(&tasks).await {
            // Its container ended a moment ago and its node has not told
            // the manager yet: taken for running, no task would start.
            let limit = self.inner.config.start_timeout;
            tasks = self
                .wait_tasks(&svc.id, (limit, TASK_POLL), &what, |now| {
                    now.iter()
                        .any(|t| t.id == ending && t.phase() != Phase::Running)
                        .then(|| now.to_vec())
                })
                .await?;
        }
        let prev = model::newest(&tasks).cloned();
        let live = prev
            .as_ref()
            .filter(|t| t.desired_state == "running")
            .filter(|t| matches!(t.phase(), Phase::Running | Phase::Pending));
        if live.is_none() {
            let alias = spec::network_attachment(&self.inner.config, &svc.port_name());
            self.update(&svc.id, &what, |spec| {
                let replicas = spec
                    .pointer("/Mode/Replicated/Replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if replicas == 0 {
                    spec["Mode"] = json!({ "Replicated": { "Replicas": 1 } });
                } else {
                    let n = spec
                        .pointer("/TaskTemplate/ForceUpdate")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    spec["TaskTemplate"]["ForceUpdate"] = json!(n + 1);
                }
                // No task runs: changing the template redeploys nothing.
                spec["TaskTemplate"]["Networks"] = json!([alias]);
            })
            .await?;
        }
        // The task to wait for: one that did not exist before the update
        // (Swarm keeps the ended ones of earlier starts), or the live one.
        let before: std::collections::HashSet<String> = if live.is_none() {
            tasks.iter().map(|t| t.id.clone()).collect()
        } else {
            Default::default()
        };
        let limit = self.inner.config.start_timeout;
        let started = self
            .wait_tasks(&svc.id, (limit, TASK_POLL), &what, |tasks| {
                let t = model::newest(tasks.iter().filter(|t| !before.contains(&t.id)))?;
                match t.phase() {
                    Phase::Running => Some(Ok(t.clone())),
                    Phase::Pending => None,
                    Phase::Ended | Phase::Lost => Some(Err(RuntimeError::Other(format!(
                        "{what}: its task ended as {}: {}",
                        t.status.state,
                        t.status.err.as_deref().unwrap_or("no error reported")
                    )))),
                }
            })
            .await??;
        self.publish(Observed::Running {
            service: svc.id.clone(),
            game: svc.game_id(),
            at: started.status_at(),
            task: started.id,
        });
        Ok(())
    }

    /// Ends the running task: on this node by stopping its container with
    /// `grace`; elsewhere by scaling to 0 (the service's grace applies).
    /// A service without a live task is Ok.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let svc = self.owned(id).await?;
        let tasks = self.tasks_of(&svc.id).await?;
        let Some(task) = model::newest(&tasks).cloned() else {
            return Ok(());
        };
        match task.phase() {
            Phase::Ended | Phase::Lost => Ok(()),
            Phase::Running => match self.local_container(&task).await {
                Some(cid) => self.stop_here(&svc, &task, cid, grace).await,
                None => self.stop_by_scaling(&svc, &task).await,
            },
            Phase::Pending => self.stop_by_scaling(&svc, &task).await,
        }
    }

    /// Deletes the service and waits (at most `REMOVE_WAIT`, 15 s) until the
    /// containers of its tasks on this node are gone: until then a task
    /// keeps its address under the service's name on the network, so the
    /// game's next engine would resolve to both. (A task elsewhere leaves
    /// when its node has removed it; the manager cannot wait for that.)
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let svc = self.owned(id).await?;
        let what = format!("remove service {id}");
        let mut here = Vec::new();
        for t in self.tasks_of(&svc.id).await? {
            if let Some(c) = self.local_container(&t).await {
                here.push(c.to_owned());
            }
        }
        self.api()
            .delete_service(&svc.id)
            .await
            .map_err(|e| to_runtime(e, &what))?;
        let deadline = Instant::now() + REMOVE_WAIT;
        for c in &here {
            loop {
                match self.api().raw_get(&format!("/containers/{c}/json")).await {
                    Err(e) if matches!(classify(&e), Failure::Status(404, _)) => break,
                    _ if Instant::now() >= deadline => {
                        tracing::warn!(service = %svc.id, container = %c, "service deleted; its task's container lingers");
                        break;
                    }
                    _ => tokio::time::sleep(TASK_POLL).await,
                }
            }
        }
        self.publish(Observed::Gone {
            service: svc.id.clone(),
            game: svc.game_id(),
        });
        Ok(())
    }

    /// Sets the `rtm.name` label (the task is not touched; the new name
    /// becomes its network alias at its next start).
    async fn rename(&self, id: &ContainerId, name: &str) -> Result<(), RuntimeError> {
        let svc = self.owned(id).await?;
        if svc.port_name() == name {
            return Ok(());
        }
        if self.name_taken(name, Some(&svc.id)).await? {
            return Err(RuntimeError::Conflict(format!(
                "rename {id} to {name}: the name is taken by another service"
            )));
        }
        self.update(&svc.id, &format!("rename {id} to {name}"), |spec| {
            if let Some(l) = spec.get_mut("Labels").and_then(Value::as_object_mut) {
                l.insert(LABEL_NAME.into(), json!(name));
            }
        })
        .await
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo, RuntimeError> {
        let svc = self.owned(id).await?;
        let tasks = self.tasks_of(&svc.id).await?;
        let task = model::newest(&tasks);
        let remembered = match (task, svc.label(LABEL_LAST_EXIT)) {
            (None, Some(code)) => Some(code.parse().ok()),
            _ => None,
        };
        let local = match task {
            Some(t) if t.phase() != Phase::Pending => self.local_facts(t).await,
            _ => None,
        };
        model::info(&svc, task, self.network(), remembered, local.as_ref())
    }

    async fn list(&self, game: Option<&GameId>) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let services = self.owned_services(game).await?;
        let ids = services.iter().map(|s| s.id.clone()).collect();
        let tasks = self
            .api()
            .tasks(ids)
            .await
            .map_err(|e| to_runtime(e, "list tasks"))?;
        let by_service = model::by_service(tasks);
        services
            .iter()
            .map(|s| {
                let task = by_service.get(&s.id).and_then(model::newest);
                model::summary(s, task, self.network())
            })
            .collect()
    }

    async fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> Result<ContainerLogs, RuntimeError> {
        match self.log_source(id).await? {
            Source::Local(cid) => self.inner.local.logs(&cid, query).await,
            Source::Task(task) => crate::logs::read_task(self.api(), &task, query).await,
            Source::Nothing => Ok(ContainerLogs::default()),
        }
    }

    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static {
        let rt = self.clone();
        let id = id.clone();
        let query = *query;
        futures_util::stream::once(async move {
            type Lines =
                std::pin::Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send>>;
            let lines: Lines = match rt.log_source(&id).await {
                Ok(Source::Local(cid)) => Box::pin(rt.inner.local.follow_logs(&cid, &query)),
                Ok(Source::Task(task)) => crate::logs::follow_task(rt.clone(), task, query),
                Ok(Source::Nothing) => Box::pin(futures_util::stream::empty()),
                Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
            };
            lines
        })
        .flatten()
    }

    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static {
        feed::feed(self.clone())
    }
}
