//! [`DockerRuntime`]: the [`ContainerRuntime`] port on the Docker Engine API.
//!
//! Guarantees, beyond the port's contracts:
//! - ownership: every call that names a container inspects it first and
//!   acts only when it carries `rtm.owner=<owner>`; a foreign container is
//!   `NotFound`, exactly like a missing one. Later calls use the full id
//!   from that inspect, so a name or id prefix cannot be re-resolved to
//!   another container in between;
//! - containers are created only with the SPEC §5 shape (see
//!   [`DockerRuntime::create`]); nothing else is configurable;
//! - Docker's "not modified" (304) on start/stop counts as success, so both
//!   are idempotent as the port requires.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use docker_api::models::ContainerInspect200Response;
use docker_api::opts::{
    ContainerCreateOpts, ContainerFilter, ContainerListOpts, ContainerRemoveOpts,
    ContainerStopOpts, NetworkCreateOpts, NetworkFilter, NetworkListOpts,
};
use docker_api::Docker;
use futures_util::Stream;
use rtm_domain::ports::{
    ContainerInfo, ContainerLogs, ContainerRuntime, ContainerSpec, ContainerSummary, FeedItem,
    LogLine, LogQuery,
};
use rtm_domain::{ContainerId, GameId, ImageRef, RuntimeError};

use crate::auth::CredentialsFile;
use crate::config::{DockerConfig, DockerConfigError, EngineUser};
use crate::convert::{
    self, LABEL_GAME_ID, LABEL_IMAGE_REF, LABEL_MANAGED, LABEL_OWNER, LABEL_STATE_PATH,
};
use crate::create::{CreateClient, Lockdown};
use crate::error::{classify, is_removal_in_progress, to_runtime, Failure};
use crate::events;

/// How long a network creator waits for concurrent creators before
/// resolving duplicates; longer than a network creation takes.
const NETWORK_SETTLE: Duration = Duration::from_secs(1);
/// How long `remove` waits for a removal someone else started (Docker's
/// 409 "removal … already in progress") before it reports a `Conflict`.
const REMOVAL_WAIT: Duration = Duration::from_secs(30);
/// How often it looks whether that removal is done.
const REMOVAL_POLL: Duration = Duration::from_millis(100);

/// The Docker adapter. Cheap to clone: clones share one client.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    /// The same transport as `docker`, for the locked-down create body.
    creator: CreateClient,
    config: DockerConfig,
    user: EngineUser,
    lockdown: Lockdown,
    /// `None` when no credentials file is configured.
    credentials: Option<CredentialsFile>,
    /// Serializes network creation within the process. A tokio mutex: it
    /// is held across the Docker calls.
    network_lock: tokio::sync::Mutex<()>,
    /// Set once the engines' network is known to exist, so a start does
    /// not inspect it (under `network_lock`) every time; cleared when a
    /// create fails, which re-checks it (see `create`).
    network_ready: std::sync::atomic::AtomicBool,
    /// Bounds the container creates and starts in flight
    /// (`DockerConfig::call_concurrency`): a burst of starts keeps Docker
    /// busy without piling every request on it at once. Pulls, stops (a
    /// stop waits out the engine's grace) and reads are not bounded by it,
    /// so no start waits behind another game's pull or health gate.
    calls: tokio::sync::Semaphore,
    /// Ids of containers this process created and has not started yet:
    /// the start that follows its own create needs no ownership inspect
    /// (the id is the one Docker just gave, with this owner's labels), one
    /// Docker call less per start in a burst. Bounded ([`FRESH_KEPT`]).
    fresh: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// Created-not-started ids remembered (a burst's worth; an older one is
/// simply checked by inspect at its start).
const FRESH_KEPT: usize = 1024;

impl DockerRuntime {
    /// Validates `config` and builds the client. Does not contact Docker
    /// (use [`ContainerRuntime::ping`] for that), so a service can start
    /// while Docker is down and report `docker_unavailable` per operation.
    pub fn new(config: DockerConfig) -> Result<Self, DockerConfigError> {
        config.validate()?;
        let user = config.engine_user;
        let cap_add = config.cap_add.clone();
        let credentials = config
            .registry_auth_file
            .as_deref()
            .map(CredentialsFile::open)
            .transpose()?;
        let endpoint = config.host.endpoint();
        let docker = endpoint.connect()?;
        let creator = CreateClient::new(endpoint)?;
        let lockdown = Lockdown {
            cap_add,
            tmpfs_bytes: config.tmpfs_bytes,
            pids_limit: config.pids_limit,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                docker,
                creator,
                user,
                lockdown,
                credentials,
                network_lock: tokio::sync::Mutex::new(()),
                network_ready: std::sync::atomic::AtomicBool::new(false),
                calls: tokio::sync::Semaphore::new(config.call_concurrency.max(1)),
                fresh: std::sync::Mutex::default(),
                config,
            }),
        })
    }

    pub fn config(&self) -> &DockerConfig {
        &self.inner.config
    }

    pub(crate) fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    /// Inspects `id` and returns it only when it is ours.
    /// Waits (at most [`REMOVAL_WAIT`]) until Docker no longer knows the
    /// container `full`, for a removal another caller started.
    async fn wait_removed(&self, full: &str, what: &str) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
        loop {
            match self.docker().containers().get(full).inspect().await {
                Ok(_) => {}
                Err(e) => match classify(&e) {
                    Failure::Status(404, _) => return Ok(()),
                    _ => return Err(to_runtime(e, what)),
                },
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Conflict(format!(
                    "{what}: Docker's removal already in progress did not finish within {REMOVAL_WAIT:?}"
                )));
            }
            tokio::time::sleep(REMOVAL_POLL).await;
        }
    }

    async fn owned(&self, id: &ContainerId) -> Result<ContainerInspect200Response, RuntimeError> {
        let info = self
            .docker()
            .containers()
            .get(id.as_str())
            .inspect()
            .await
            .map_err(|e| to_runtime(e, &format!("container {id}")))?;
        if !convert::is_owned(&info, &self.inner.config.owner) {
            // Indistinguishable from a missing container on purpose.
            return Err(RuntimeError::NotFound(format!("container {id}")));
        }
        Ok(info)
    }

    /// The full id of an owned container.
    pub(crate) async fn owned_id(&self, id: &ContainerId) -> Result<String, RuntimeError> {
        let info = self.owned(id).await?;
        info.id
            .ok_or_else(|| RuntimeError::Other(format!("inspect of {id} returned no id")))
    }

    /// Creates the engines' network unless it exists.
    ///
    /// Docker's `CheckDuplicate` is best effort: concurrent creators can
    /// all succeed and leave several networks with one name (seen on
    /// 20.10), after which `network_mode(<name>)` is ambiguous. So creation
    /// is serialized within the process, and across processes every
    /// creator that succeeded waits [`NETWORK_SETTLE`] for the other
    /// concurrent creations to land, lists the networks of that name, and
    /// keeps only the one with the smallest id: all creators see the same
    /// set and agree without talking to each other. (Creators that look
    /// later find the network and create nothing.) The residual risk, a
    /// creation slower than the settle time, is why operators should create
    /// the network up front; see `docs/docker.md`.
    ///
    /// Returns `true` when the answer came from the cache (the network was
    /// seen earlier and not checked now).
    async fn ensure_network(&self) -> Result<bool, RuntimeError> {
        use std::sync::atomic::Ordering;
        if self.inner.network_ready.load(Ordering::Acquire) {
            return Ok(true);
        }
        let name = &self.inner.config.network;
        let what = format!("network {name}");
        let _serial = self.inner.network_lock.lock().await;
        match self.docker().networks().get(name).inspect().await {
            Ok(_) => {
                self.inner.network_ready.store(true, Ordering::Release);
                return Ok(false);
            }
            Err(e) => match classify(&e) {
                Failure::Status(404, _) => {}
                _ => return Err(to_runtime(e, &what)),
            },
        }
        let opts = NetworkCreateOpts::builder(name)
            .driver("bridge")
            .check_duplicate(true)
            .labels([(LABEL_MANAGED, "true")])
            .build();
        let created = match self.docker().networks().create(&opts).await {
            Ok(net) => net.id().to_string(),
            Err(e) => {
                return match classify(&e) {
                    Failure::Status(409, _) => Ok(false),
                    _ => Err(to_runtime(e, &what)),
                }
            }
        };
        self.keep_one_network(&created).await?;
        tracing::info!(network = %name, "created the engines' network");
        Ok(false)
    }

    /// Removes the network `ours` just created unless it has the smallest
    /// id among the networks of its name (see
    /// [`ensure_network`](Self::ensure_network)).
    async fn keep_one_network(&self, ours: &str) -> Result<(), RuntimeError> {
        tokio::time::sleep(NETWORK_SETTLE).await;
        let name = &self.inner.config.network;
        let opts = NetworkListOpts::builder()
            .filter([NetworkFilter::Name(name.clone())])
            .build();
        let listed = self
            .docker()
            .networks()
            .list(&opts)
            .await
            .map_err(|e| to_runtime(e, &format!("list networks {name}")))?;
        // The `name` filter matches substrings: keep exact names only.
        let winner = listed
            .iter()
            .filter(|n| n.name.as_deref() == Some(name.as_str()))
            .filter_map(|n| n.id.as_deref())
            .min();
        if let Some(winner) = winner {
            if winner != ours {
                tracing::warn!(network = %name, "another creator won the race; removing our duplicate network");
                if let Err(e) = self.docker().networks().get(ours).delete().await {
                    if !matches!(classify(&e), Failure::Status(404, _)) {
                        return Err(to_runtime(e, &format!("remove duplicate network {name}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// One of the `call_concurrency` slots for a create or a start.
    async fn call_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, RuntimeError> {
        self.inner
            .calls
            .acquire()
            .await
            .map_err(|_| RuntimeError::Other("the Docker call limiter is closed".to_owned()))
    }

    /// The Docker create itself, in one of the call slots.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        let _slot = self.call_slot().await?;
        let body = self.create_body(spec)?;
        let id = self
            .inner
            .creator
            .create(&spec.name, &body)
            .await
            .map_err(|e| to_runtime(e, &format!("create {}", spec.name)))?;
        let id = ContainerId::new(id)
            .ok_or_else(|| RuntimeError::Other("create returned an empty id".to_owned()))?;
        let mut fresh = self.fresh();
        fresh.push_back(id.as_str().to_owned());
        while fresh.len() > FRESH_KEPT {
            fresh.pop_front();
        }
        Ok(id)
    }

    fn fresh(&self) -> std::sync::MutexGuard<'_, std::collections::VecDeque<String>> {
        // A plain list: data left by a panicking holder is still usable.
        self.inner
            .fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `id` is one this process created and has not started yet
    /// (forgotten by this call: only the first start is spared the check).
    fn take_fresh(&self, id: &ContainerId) -> bool {
        let mut fresh = self.fresh();
        match fresh.iter().position(|f| f == id.as_str()) {
            Some(i) => {
                fresh.remove(i);
                true
            }
            None => false,
        }
    }

    /// Pulls `image` with the credentials of its registry, if any.
    async fn pull(&self, image: &ImageRef) -> Result<(), RuntimeError> {
        let credential = self
            .inner
            .credentials
            .as_ref()
            .and_then(|c| c.get(image.registry()));
        crate::pull::pull(
            self.docker(),
            image,
            credential.as_ref(),
            self.inner.config.pull_timeout,
        )
        .await
    }

    /// Inspects an image: `Ok(true)` present, `Ok(false)` absent.
    async fn image_present(&self, image: &ImageRef) -> Result<bool, RuntimeError> {
        match self
            .docker()
            .images()
            .get(image.to_string())
            .inspect()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => match classify(&e) {
                Failure::Status(404, _) => Ok(false),
                _ => Err(to_runtime(e, &format!("image {image}"))),
            },
        }
    }

    /// The whole create body: the builder's fields plus the lockdown.
    fn create_body(&self, spec: &ContainerSpec) -> Result<serde_json::Value, RuntimeError> {
        let mut body: serde_json::Value = self
            .create_opts(spec)
            .serialize()
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| RuntimeError::Other("cannot serialise the create body".to_owned()))?;
        crate::create::lockdown(&mut body, &self.inner.lockdown);
        Ok(body)
    }

    fn create_opts(&self, spec: &ContainerSpec) -> ContainerCreateOpts {
        let c = &self.inner.config;
        let image = spec.image.to_string();
        let labels = [
            (LABEL_MANAGED, "true"),
            (LABEL_GAME_ID, spec.game_id.as_str()),
            (LABEL_OWNER, c.owner.as_str()),
            (LABEL_IMAGE_REF, image.as_str()),
            (LABEL_STATE_PATH, spec.state_path.as_str()),
        ];
        let env = [
            format!("GAME_ID={}", spec.game_id),
            format!("ENGINE_STATE_DIR={}", c.state_mount),
            format!("ENGINE_PORT={}", c.engine_port),
        ];
        let mut b = ContainerCreateOpts::builder()
            .name(&spec.name)
            .image(&image)
            .labels(labels)
            .env(env)
            .user(self.inner.user.to_string())
            // The only host path: the game's own state directory.
            .volumes([format!("{}:{}", spec.state_path, c.state_mount)])
            .network_mode(&c.network)
            .privileged(false)
            .security_options(["no-new-privileges"])
            // RTM reports exits; Docker must not hide them by restarting.
            .restart_policy("no", 0)
            .log_driver("json-file")
            .log_driver_config([
                // A plain number is bytes to the json-file driver.
                ("max-size", c.log_max_size.to_string()),
                ("max-file", c.log_max_files.to_string()),
            ]);
        if c.memory_bytes > 0 {
            // Swap equal to memory: the limit is a hard one and an engine
            // over it is OOM-killed instead of swapping the host to a crawl.
            b = b
                .memory(c.memory_bytes)
                .memory_swap(i64::try_from(c.memory_bytes).unwrap_or(i64::MAX));
        }
        if c.nano_cpus > 0 {
            b = b.nano_cpus(c.nano_cpus);
        }
        b.build()
    }
}

/// `state_path` becomes a bind source: it must be an absolute host path
/// (a relative one would silently become a named volume) without the `:`
/// that separates bind fields.
fn check_state_path(path: &str) -> Result<(), RuntimeError> {
    if !path.starts_with('/') || path.contains(':') || path.contains(',') {
        return Err(RuntimeError::Other(format!(
            "state path {path:?} must be an absolute host path without ':' or ','"
        )));
    }
    Ok(())
}

/// Creates the state directory (and parents) and hands the leaf to the
/// engine user, so the non-root engine can write it.
fn prepare_state_dir(path: &Path, user: EngineUser) -> Result<(), RuntimeError> {
    let fail = |what: &str, e: std::io::Error| {
        RuntimeError::Other(format!("state directory {}: {what}: {e}", path.display()))
    };
    std::fs::create_dir_all(path).map_err(|e| fail("create", e))?;
    let meta = std::fs::metadata(path).map_err(|e| fail("stat", e))?;
    if !meta.is_dir() {
        return Err(RuntimeError::Other(format!(
            "state directory {} is not a directory",
            path.display()
        )));
    }
    // Skipping a needless chown lets RTM run without CAP_CHOWN when the
    // operator prepared the directories.
    if meta.uid() != user.uid() || meta.gid() != user.gid() {
        std::os::unix::fs::chown(path, Some(user.uid()), Some(user.gid()))
            .map_err(|e| fail("chown", e))?;
    }
    Ok(())
}

/// Docker's stop timeout is whole seconds; round up so a short grace is
/// never turned into an immediate SIGKILL.
fn grace_secs(grace: Duration) -> Duration {
    let secs = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
    Duration::from_secs(secs)
}

/// 304 Not Modified: already in the requested state.
fn ok_if_not_modified(r: docker_api::Result<()>, what: &str) -> Result<(), RuntimeError> {
    match r {
        Ok(()) => Ok(()),
        Err(e) => match classify(&e) {
            Failure::Status(304, _) => Ok(()),
            _ => Err(to_runtime(e, what)),
        },
    }
}

impl ContainerRuntime for DockerRuntime {
    async fn ping(&self) -> Result<(), RuntimeError> {
        // `GET /version`, not docker-api's `ping`: the latter fails unless
        // seven specific headers are present, which a proxy may drop.
        self.docker()
            .version()
            .await
            .map(|_| ())
            .map_err(|e| to_runtime(e, "docker version"))
    }

    async fn ensure_image(&self, image: &ImageRef) -> Result<(), RuntimeError> {
        if self.image_present(image).await? {
            return Ok(());
        }
        tracing::info!(%image, "pulling image");
        self.pull(image).await?;
        // A pull stream can end without an error item and still leave
        // nothing behind (e.g. a cut connection); only the image counts.
        if self.image_present(image).await? {
            Ok(())
        } else {
            Err(RuntimeError::PullFailed(format!(
                "{image}: absent after pull"
            )))
        }
    }

    /// Deletes the state directory tree; a missing one is Ok. The path is
    /// checked like at create, so a corrupt record cannot aim this at `/`
    /// or a relative path.
    async fn remove_state(&self, path: &str) -> Result<(), RuntimeError> {
        check_state_path(path)?;
        if Path::new(path).parent().is_none() {
            return Err(RuntimeError::Other(format!(
                "state path {path:?} is a filesystem root"
            )));
        }
        let dir = std::path::PathBuf::from(path);
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::Other(format!(
                "state directory {}: remove: {e}",
                dir.display()
            ))),
        })
        .await
        .map_err(|e| RuntimeError::Other(format!("state directory task failed: {e}")))?
    }

    /// Creates the container per SPEC §5: network (created if missing),
    /// state directory (created, owned by the engine user) bound at the
    /// state mount and no other mount, memory/CPU limits, `json-file` logs
    /// with rotation, the engine user, `no-new-privileges`, never
    /// privileged, restart policy `no`, the five `rtm.*` labels and the
    /// `GAME_ID`, `ENGINE_STATE_DIR`, `ENGINE_PORT` environment; and the
    /// lockdown: every capability dropped (but the allow-list), read-only
    /// root filesystem, a size-capped `noexec` tmpfs at `/tmp`, the pids
    /// limit and Docker's init.
    async fn create(&self, spec: &ContainerSpec) -> Result<ContainerId, RuntimeError> {
        check_state_path(&spec.state_path)?;
        let cached = self.ensure_network().await?;
        let path = std::path::PathBuf::from(&spec.state_path);
        let user = self.inner.user;
        tokio::task::spawn_blocking(move || prepare_state_dir(&path, user))
            .await
            .map_err(|e| RuntimeError::Other(format!("state directory task failed: {e}")))??;
        match self.create_container(spec).await {
            // The network was not checked for this create: it may have been
            // removed since. Check it (creating it if missing) and retry once.
            Err(_) if cached => {
                self.inner
                    .network_ready
                    .store(false, std::sync::atomic::Ordering::Release);
                self.ensure_network().await?;
                self.create_container(spec).await
            }
            created => created,
        }
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let full = if self.take_fresh(id) {
            id.as_str().to_owned()
        } else {
            self.owned_id(id).await?
        };
        let _slot = self.call_slot().await?;
        let r = self.docker().containers().get(full).start().await;
        ok_if_not_modified(r, &format!("start {id}"))
    }

    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let full = self.owned_id(id).await?;
        let opts = ContainerStopOpts::builder().wait(grace_secs(grace)).build();
        let r = self.docker().containers().get(full).stop(&opts).await;
        ok_if_not_modified(r, &format!("stop {id}"))
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let full = self.owned_id(id).await?;
        let opts = ContainerRemoveOpts::builder()
            .force(true)
            .volumes(true)
            .build();
        let what = format!("remove {id}");
        match self.docker().containers().get(&full).remove(&opts).await {
            Ok(_) => Ok(()),
            Err(e) => match classify(&e) {
                // Someone else (an operator's `docker rm -f`, another
                // replica) is removing it: the container is going away, so
                // this removal succeeds once it is gone.
                Failure::Status(409, msg) if is_removal_in_progress(&msg) => {
                    self.wait_removed(&full, &what).await
                }
                _ => Err(to_runtime(e, &what)),
            },
        }
    }

    async fn rename(&self, id: &ContainerId, name: &str) -> Result<(), RuntimeError> {
        let full = self.owned_id(id).await?;
        self.docker()
            .containers()
            .get(full)
            .rename(name)
            .await
            .map_err(|e| to_runtime(e, &format!("rename {id} to {name}")))
    }

    async fn inspect(&self, id: &ContainerId) -> Result<ContainerInfo, RuntimeError> {
        let info = self.owned(id).await?;
        convert::container_info(&info, &self.inner.config.network)
    }

    async fn list(&self, game: Option<&GameId>) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let mut filters = vec![ContainerFilter::Label(
            LABEL_OWNER.to_owned(),
            self.inner.config.owner.clone(),
        )];
        if let Some(game) = game {
            filters.push(ContainerFilter::Label(
                LABEL_GAME_ID.to_owned(),
                game.as_str().to_owned(),
            ));
        }
        let opts = ContainerListOpts::builder()
            .all(true)
            .filter(filters)
            .build();
        let listed = self
            .docker()
            .containers()
            .list(&opts)
            .await
            .map_err(|e| to_runtime(e, "list containers"))?;
        let network = &self.inner.config.network;
        Ok(listed
            .iter()
            .filter_map(|c| convert::container_summary(c, network))
            .collect())
    }

    async fn logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> Result<ContainerLogs, RuntimeError> {
        crate::logs::read(self, id, query).await
    }

    fn follow_logs(
        &self,
        id: &ContainerId,
        query: &LogQuery,
    ) -> impl Stream<Item = Result<LogLine, RuntimeError>> + Send + 'static {
        crate::logs::follow(self.clone(), id.clone(), *query)
    }

    fn events(&self) -> impl Stream<Item = FeedItem> + Send + 'static {
        events::feed(self.inner.docker.clone(), self.inner.config.owner.clone())
    }
}

#[cfg(test)]
mod tests;
