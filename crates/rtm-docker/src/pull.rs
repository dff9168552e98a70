//! Image pulls: with the registry's credentials, bounded in time, with
//! progress logged at a steady rate.
//!
//! Docker reports a pull as a stream of per-layer status lines; errors
//! arrive as items of that stream (or as the HTTP status when the pull
//! fails before it starts). [`pull`] turns both into `PullFailed` with
//! Docker's message (which carries the registry's reason, e.g.
//! `unauthorized: authentication required`), an unreachable Docker into
//! `Unavailable`, and a pull that outlives the timeout into `PullFailed`.
//! Dropping the request on timeout makes Docker cancel the pull.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use docker_api::models::ImageBuildChunk;
use docker_api::opts::PullOpts;
use docker_api::Docker;
use futures_util::StreamExt;
use rtm_domain::{ImageRef, RuntimeError};

use crate::auth::Credential;
use crate::error::{classify, Failure};

/// How often a long pull logs its progress: often enough to see it move,
/// rarely enough that a large image does not flood the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Pulls `image` (by digest when it has one), sending `credential` when
/// given, within `timeout`.
pub(crate) async fn pull(
    docker: &Docker,
    image: &ImageRef,
    credential: Option<&Credential>,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    // A digest pins the content more exactly than a tag, so it wins when
    // the reference has both.
    let tag = image.digest().or(image.tag()).unwrap_or("latest");
    let mut opts = PullOpts::builder().image(image.name()).tag(tag);
    if let Some(c) = credential {
        opts = opts.auth(c.registry_auth(image.registry()));
    }
    let opts = opts.build();
    let started = Instant::now();
    match tokio::time::timeout(timeout, follow(docker, image, &opts, started)).await {
        Ok(r) => r,
        Err(_) => Err(RuntimeError::PullFailed(format!(
            "{image}: pull did not finish within {}s (RTM_PULL_TIMEOUT)",
            timeout.as_secs_f64()
        ))),
    }
}

async fn follow(
    docker: &Docker,
    image: &ImageRef,
    opts: &PullOpts,
    started: Instant,
) -> Result<(), RuntimeError> {
    let images = docker.images();
    let mut stream = images.pull(opts);
    let mut progress = Progress::default();
    let mut last_log = started;
    while let Some(item) = stream.next().await {
        match item {
            Ok(ImageBuildChunk::Error { error, .. }) => {
                return Err(RuntimeError::PullFailed(format!("{image}: {error}")));
            }
            Ok(ImageBuildChunk::PullStatus {
                status,
                id,
                progress_detail,
                ..
            }) => {
                let detail = progress_detail.as_ref();
                progress.update(
                    id.as_deref(),
                    &status,
                    detail.and_then(|d| d.current),
                    detail.and_then(|d| d.total),
                );
                if last_log.elapsed() >= PROGRESS_EVERY {
                    last_log = Instant::now();
                    let (current, total) = progress.bytes();
                    tracing::info!(%image, layers = progress.layers(), layers_done = progress.done(),
                        downloaded_bytes = current, total_bytes = total,
                        elapsed_s = started.elapsed().as_secs(), "pull in progress");
                }
            }
            Ok(_) => {}
            Err(e) => {
                return Err(match classify(&e) {
                    Failure::Unreachable => RuntimeError::Unavailable(Box::new(e)),
                    Failure::Status(_, msg) => RuntimeError::PullFailed(format!("{image}: {msg}")),
                    Failure::Other => RuntimeError::PullFailed(format!("{image}: {e}")),
                });
            }
        }
    }
    let (current, _) = progress.bytes();
    tracing::info!(%image, layers = progress.layers(), downloaded_bytes = current,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "pull finished");
    Ok(())
}

/// Per-layer progress of one pull.
#[derive(Debug, Default)]
struct Progress {
    /// layer id → (bytes downloaded, bytes in total, done)
    layers: HashMap<String, (u64, u64, bool)>,
}

impl Progress {
    fn update(&mut self, id: Option<&str>, status: &str, current: Option<u64>, total: Option<u64>) {
        // Lines without a layer id ("Pulling from …", "Digest: …") say
        // nothing about bytes.
        let Some(id) = id else { return };
        if status.starts_with("Pulling from") {
            return;
        }
        let layer = self.layers.entry(id.to_owned()).or_default();
        match status {
            "Downloading" => {
                if let Some(c) = current {
                    layer.0 = c;
                }
                if let Some(t) = total {
                    layer.1 = t;
                }
            }
            "Download complete" => layer.0 = layer.1.max(layer.0),
            "Pull complete" | "Already exists" => layer.2 = true,
            _ => {}
        }
    }

    fn layers(&self) -> usize {
        self.layers.len()
    }

    fn done(&self) -> usize {
        self.layers.values().filter(|l| l.2).count()
    }

    /// (downloaded, total) bytes over the layers seen so far.
    fn bytes(&self) -> (u64, u64) {
        self.layers
            .values()
            .fold((0, 0), |(c, t), l| (c + l.0, t + l.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_layers_and_bytes() {
        let mut p = Progress::default();
        p.update(Some("1.0"), "Pulling from engine-stub", None, None);
        p.update(Some("a"), "Pulling fs layer", None, None);
        p.update(Some("b"), "Already exists", None, None);
        p.update(Some("a"), "Downloading", Some(100), Some(1000));
        p.update(Some("a"), "Downloading", Some(600), Some(1000));
        p.update(None, "Digest: sha256:…", None, None);
        assert_eq!((p.layers(), p.done()), (2, 1));
        assert_eq!(p.bytes(), (600, 1000));
        p.update(Some("a"), "Download complete", None, None);
        p.update(Some("a"), "Pull complete", None, None);
        assert_eq!((p.layers(), p.done()), (2, 2));
        assert_eq!(p.bytes(), (1000, 1000));
    }
}
