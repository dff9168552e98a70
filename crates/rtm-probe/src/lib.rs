//! # rtm-probe
//!
//! The HTTP health probe of engines: [`HttpProbe`] implements the domain's
//! [`EngineProbe`] port with a hyper 0.14 client.
//!
//! Guarantees:
//! - `Ok` only when the engine answered `GET <path>` with a 2xx status and
//!   its body, all within [`ProbeConfig::timeout`]; any other outcome is a
//!   [`ProbeError`] whose text says what happened (timeout, connection
//!   refused, HTTP 503, …) and where.
//! - The container's IP is preferred when known (`http://<ip>:<port>`):
//!   it is reachable both from the host and from inside the engines'
//!   network, whereas the `rtm-<game>` endpoint resolves only inside that
//!   network (SPEC §7). Without an IP the endpoint is used.
//! - Connections are kept alive and reused between probes (at most one
//!   idle connection per engine), so probing 1,000 engines every few
//!   seconds does not open 1,000 connections every few seconds. Still,
//!   at least every [`FRESH_EVERY`] a probe of an engine asks it to close
//!   the connection after answering (`Connection: close`), so the next
//!   probe connects anew: a kept connection shows that the engine answers
//!   requests, a new one that it still accepts connections.
//!
//! Needs a tokio runtime (hyper's connector and the timeout use it).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::body::HttpBody;
use hyper::client::HttpConnector;
use hyper::{Body, Client, Request, Uri};
use rtm_domain::ports::{EngineProbe, ProbeTarget};
use rtm_domain::ProbeError;

/// How much of a health answer's body is read (the rest is not needed;
/// reading the body lets the connection be reused).
const MAX_BODY: usize = 64 * 1024;

/// At least this often a probe of one engine ends its connection, so the
/// next one exercises the engine's listener (see the crate docs).
pub const FRESH_EVERY: Duration = Duration::from_secs(60);

/// Settings of the probe (from `RTM_PROBE_PATH`, `RTM_PROBE_TIMEOUT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Path of the engine's health endpoint, e.g. `/healthz`.
    pub path: String,
    /// The whole probe (connect, request, answer) must fit in it.
    pub timeout: Duration,
}

impl Default for ProbeConfig {
    /// SPEC §10: `/healthz`, 1 s.
    fn default() -> Self {
        Self {
            path: "/healthz".into(),
            timeout: Duration::from_secs(1),
        }
    }
}

/// The engine probe over HTTP. Cheap to clone (shares its connection pool).
#[derive(Debug, Clone)]
pub struct HttpProbe {
    client: Client<HttpConnector, Body>,
    path: Arc<str>,
    timeout: Duration,
    /// When each URL was last probed with `Connection: close`.
    closed_at: Arc<Mutex<HashMap<String, Instant>>>,
}

impl HttpProbe {
    pub fn new(config: ProbeConfig) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        connector.set_nodelay(true);
        let client = Client::builder()
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        let path = if config.path.starts_with('/') {
            config.path
        } else {
            format!("/{}", config.path)
        };
        Self {
            client,
            path: path.into(),
            timeout: config.timeout,
            closed_at: Arc::default(),
        }
    }

    /// The URL probed for `target`: the container IP when known, else the
    /// endpoint.
    pub fn url(&self, target: &ProbeTarget) -> String {
        match target.ip {
            // SocketAddr's Display brackets IPv6 addresses as URLs need.
            Some(ip) => format!("http://{}{}", SocketAddr::new(ip, target.port), self.path),
            None => format!("{}{}", target.endpoint.trim_end_matches('/'), self.path),
        }
    }

    async fn check(&self, url: &str) -> Result<(), ProbeError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ProbeError(format!("invalid probe URL {url:?}: {e}")))?;
        let mut request = Request::get(uri).header(hyper::header::USER_AGENT, "rtmanager-probe");
        if self.close_now(url) {
            request = request.header(hyper::header::CONNECTION, "close");
        }
        let request = request
            .body(Body::empty())
            .map_err(|e| ProbeError(format!("cannot build a request for {url}: {e}")))?;
        let response = self.client.request(request).await.map_err(|e| {
            let what = if e.is_connect() {
                "cannot connect to"
            } else {
                "request failed for"
            };
            ProbeError(format!("{what} {url}: {}", rtm_domain::error_chain(&e)))
        })?;
        let status = response.status();
        // Read (a bounded part of) the body so the connection can be reused.
        let mut body = response.into_body();
        let mut read = 0usize;
        while read < MAX_BODY {
            match body.data().await {
                Some(Ok(chunk)) => read += chunk.len(),
                Some(Err(e)) => {
                    return Err(ProbeError(format!(
                        "{url} answered HTTP {status} but its body failed: {}",
                        rtm_domain::error_chain(&e)
                    )))
                }
                None => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(ProbeError(format!("{url} answered HTTP {status}")))
        }
    }
}

impl HttpProbe {
    /// Whether this probe of `url` should end its connection: the first
    /// one, and then one at least every [`FRESH_EVERY`].
    fn close_now(&self, url: &str) -> bool {
        let now = Instant::now();
        let mut closed = self
            .closed_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if closed
            .get(url)
            .is_some_and(|at| now.duration_since(*at) < FRESH_EVERY)
        {
            return false;
        }
        // Forget engines not probed for a while (removed games, old IPs),
        // so the map stays the size of the fleet.
        if closed.len() > 64 && closed.len().is_power_of_two() {
            closed.retain(|_, at| now.duration_since(*at) < 10 * FRESH_EVERY);
        }
        closed.insert(url.to_owned(), now);
        true
    }
}

impl EngineProbe for HttpProbe {
    fn probe(&self, target: &ProbeTarget) -> impl Future<Output = Result<(), ProbeError>> + Send {
        let url = self.url(target);
        let this = self.clone();
        async move {
            match tokio::time::timeout(this.timeout, this.check(&url)).await {
                Ok(result) => result,
                Err(_) => Err(ProbeError(format!(
                    "{url} did not answer within {:?} (timed out)",
                    this.timeout
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn target(ip: Option<IpAddr>) -> ProbeTarget {
        ProbeTarget {
            endpoint: "http://rtm-g:8080/".into(),
            ip,
            port: 8080,
        }
    }

    #[test]
    fn a_connection_is_ended_on_the_first_probe_and_then_once_a_minute() {
        let probe = HttpProbe::new(ProbeConfig::default());
        assert!(probe.close_now("http://10.0.0.1:8080/healthz"));
        assert!(!probe.close_now("http://10.0.0.1:8080/healthz"));
        assert!(
            probe.close_now("http://10.0.0.2:8080/healthz"),
            "per engine"
        );
        let long_ago = Instant::now()
            .checked_sub(FRESH_EVERY)
            .expect("the clock has run a minute");
        probe
            .closed_at
            .lock()
            .unwrap()
            .insert("http://10.0.0.1:8080/healthz".into(), long_ago);
        assert!(probe.close_now("http://10.0.0.1:8080/healthz"));
    }

    #[tokio::test]
    async fn urls_prefer_the_ip_and_bracket_ipv6() {
        let probe = HttpProbe::new(ProbeConfig {
            path: "healthz".into(),
            timeout: Duration::from_secs(1),
        });
        assert_eq!(probe.url(&target(None)), "http://rtm-g:8080/healthz");
        let v4 = Some(IpAddr::V4(Ipv4Addr::new(172, 18, 0, 5)));
        assert_eq!(probe.url(&target(v4)), "http://172.18.0.5:8080/healthz");
        let v6 = Some(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(probe.url(&target(v6)), "http://[::1]:8080/healthz");
    }
}
