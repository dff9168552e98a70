//! A real image registry for tests: Debian's `docker-registry` (the
//! Distribution registry) on a free loopback port, open or behind htpasswd
//! (bcrypt) auth, with its storage in a temporary directory.
//!
//! Docker treats `127.0.0.1:<port>` as an insecure registry, so the engine
//! pushes and pulls over plain HTTP without any daemon configuration. The
//! docker CLI logs in with its own `DOCKER_CONFIG` directory, so nothing is
//! written to the machine's `~/.docker`.
//!
//! Only references under `127.0.0.1:<port>/` are ever tagged or untagged
//! here (the shared `rtm.local/engine-stub:*` tags are never touched), and
//! untagging never forces: the image content shared with other tags stays.
//! Dropping a [`Registry`] kills the server, removes every local reference
//! under its host and deletes its directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::docker::docker;

/// How long the registry may take to answer after it was started.
const READY_WAIT: Duration = Duration::from_secs(30);

/// A running (or stopped) registry.
#[derive(Debug)]
pub struct Registry {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    login: Option<(String, String)>,
}

/// One pushed image, absent locally until pulled.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `127.0.0.1:<port>/<repo>:<tag>`.
    pub tag_ref: String,
    /// `127.0.0.1:<port>/<repo>@sha256:…`.
    pub digest_ref: String,
}

impl Registry {
    /// A registry that accepts anonymous pushes and pulls.
    pub fn start_open() -> Result<Self> {
        Self::start(None)
    }

    /// A registry that requires `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Result<Self> {
        Self::start(Some((user.to_owned(), password.to_owned())))
    }

    fn start(login: Option<(String, String)>) -> Result<Self> {
        let dir = std::env::temp_dir().join(crate::unique("rtm-registry"));
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let mut auth = String::new();
        if let Some((user, password)) = &login {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .stdin(Stdio::null())
                .output()
                .context("running htpasswd (apt-get install apache2-utils)")?;
            if !out.status.success() {
                bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
            }
            std::fs::write(dir.join("htpasswd"), &out.stdout)?;
            auth = format!(
                "auth:\n  htpasswd:\n    realm: rtm-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: {}\n{auth}",
            dir.join("data").display(),
            crate::unique("s")
        );
        std::fs::write(dir.join("config.yml"), config)?;
        let log = std::fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let mut registry = Self {
            child: Some(child),
            dir,
            port,
            login,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    /// `127.0.0.1:<port>`, the registry part of its image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Polls `GET /v2/` until the registry answers (200, or 401 with auth).
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "docker-registry exited ({status}): {}",
                        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
                    );
                }
            }
            if let Ok(status) = self.v2_status() {
                if status == 200 || status == 401 {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("docker-registry on {} did not answer in time", self.host());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn v2_status(&self) -> std::io::Result<u16> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(
            s,
            "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.host()
        )?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        let text = String::from_utf8_lossy(&head);
        text.get(9..12)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad answer {text:?}")))
    }

    /// Runs the docker CLI with this registry's own client config dir
    /// (where `docker login` keeps its credentials).
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = crate::docker::cli();
        cmd.env("DOCKER_CONFIG", self.dir.join("client"));
        let mut child = cmd
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running the docker CLI")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "docker {} failed: {}",
                args.first().copied().unwrap_or_default(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Tags the local image `local` as `<host>/<repo_tag>`, pushes it,
    /// then removes that local reference (and its digest reference), so
    /// that using it needs a pull. `local` itself is left alone.
    pub fn push(&self, local: &str, repo_tag: &str) -> Result<Pushed> {
        let tag_ref = format!("{}/{repo_tag}", self.host());
        if let Some((user, password)) = &self.login {
            self.cli(
                &["login", &self.host(), "-u", user, "--password-stdin"],
                Some(password),
            )?;
        }
        docker(&["tag", local, &tag_ref])?;
        let out = self.cli(&["push", &tag_ref], None)?;
        let digest = out
            .split_whitespace()
            .skip_while(|w| *w != "digest:")
            .nth(1)
            .filter(|d| d.starts_with("sha256:"))
            .with_context(|| format!("no digest in the push output: {out}"))?
            .to_owned();
        let repo = tag_ref
            .rsplit_once(':')
            .map(|(r, _)| r.to_owned())
            .unwrap_or_else(|| tag_ref.clone());
        let digest_ref = format!("{repo}@{digest}");
        untag(&tag_ref)?;
        untag(&digest_ref)?;
        for r in [&tag_ref, &digest_ref] {
            if docker(&["image", "inspect", r]).is_ok() {
                bail!("{r} is still present locally after untagging");
            }
        }
        Ok(Pushed {
            tag_ref,
            digest_ref,
        })
    }

    /// Whether Docker has `reference` locally.
    pub fn present(reference: &str) -> bool {
        docker(&["image", "inspect", "--format", "{{.Id}}", reference]).is_ok()
    }

    /// Kills the server (a registry that is down); its directory stays
    /// until the drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Local references under this registry's host.
    fn local_refs(&self) -> Vec<String> {
        let filter = format!("reference={}/*", self.host());
        let out = docker(&[
            "images",
            "--digests",
            "--filter",
            &filter,
            "--format",
            "{{.Repository}} {{.Tag}} {{.Digest}}",
        ])
        .unwrap_or_default();
        let mut refs = Vec::new();
        for line in out.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [repo, tag, digest] = f[..] {
                if tag != "<none>" {
                    refs.push(format!("{repo}:{tag}"));
                }
                if digest != "<none>" {
                    refs.push(format!("{repo}@{digest}"));
                }
            }
        }
        refs
    }
}

/// Removes one local reference without force (never deletes content
/// another tag uses); a reference that is already gone is fine.
fn untag(reference: &str) -> Result<()> {
    match docker(&["rmi", "--no-prune", reference]) {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("No such image") => Ok(()),
        Err(e) => Err(e),
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        for r in self.local_refs() {
            let _ = untag(&r);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port the OS just handed out on loopback (free unless someone takes
/// it in the instant between this and the registry's bind).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The registry's own log (for the message of a failed test).
pub fn log_of(registry: &Registry) -> PathBuf {
    registry.dir.join("registry.log")
}
