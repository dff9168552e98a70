//! # rtm-probe
//!
//! The HTTP health probe of engines: [`HttpProbe`] implements the domain's
//! [`EngineProbe`] port with an HTTP/1.1 `GET` over tokio's TCP, the answer
//! read with `httparse`.
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
//! - The answer is read as HTTP/1.1 says: interim (1xx) answers skipped,
//!   a head of at most [`MAX_HEAD`] bytes, the body by its own framing
//!   (`Content-Length`, chunked, or until the engine closes), at most
//!   [`MAX_BODY`] of it read and thrown away.
//! - Connections are kept alive and reused between probes (at most one
//!   idle connection per engine, closed after [`IDLE_TIMEOUT`] idle), so
//!   probing 1,000 engines every few seconds does not open 1,000
//!   connections every few seconds. A connection is kept only after an
//!   HTTP/1.1 answer read whole that did not say `Connection: close`.
//! - A kept connection is used for at most [`FRESH_EVERY`]; then the probe
//!   connects anew: a kept connection shows that the engine answers
//!   requests, a new one that it still accepts connections.
//! - An engine that closed a kept connection while it was idle (servers
//!   time idle connections out, some after 5 s) costs no failure: a
//!   request that got not one byte of an answer on a kept connection is
//!   sent once more, on a new connection (a `GET` may be repeated).
//! - A kept connection costs its socket and nothing else: the buffer of an
//!   exchange lives as long as the exchange. (hyper 0.14's client, used
//!   before, held about 25 KiB per kept connection — two 8 KiB buffers and
//!   a request channel — a third of rtmanager's memory at 1,000 engines;
//!   docs/benchmarks.md.)
//!
//! Needs a tokio runtime: the sockets, the timeout and the task that
//! closes idle connections use it.

mod answer;
mod pool;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use rtm_domain::ports::{EngineProbe, ProbeTarget};
use rtm_domain::ProbeError;
use tokio::net::TcpStream;

use answer::{Answer, Failed};
pub use answer::{MAX_BODY, MAX_HEAD};
use pool::{Kept, Pool};

/// A kept connection is used for at most this long; the probe after it
/// connects anew (see the crate docs).
pub const FRESH_EVERY: Duration = Duration::from_secs(60);

/// A kept connection idle this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The engine probe over HTTP. Cheap to clone (clones share their kept
/// connections).
#[derive(Debug, Clone)]
pub struct HttpProbe {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: String,
    timeout: Duration,
    pool: Pool,
    /// Starts the task that closes idle connections, on the first probe
    /// (a runtime is there then).
    reaper: Once,
}

impl HttpProbe {
    pub fn new(config: ProbeConfig) -> Self {
        let path = if config.path.starts_with('/') {
            config.path
        } else {
            format!("/{}", config.path)
        };
        Self {
            inner: Arc::new(Inner {
                path,
                timeout: config.timeout,
                pool: Pool::default(),
                reaper: Once::new(),
            }),
        }
    }

    /// The URL probed for `target`: the container IP when known, else the
    /// endpoint.
    pub fn url(&self, target: &ProbeTarget) -> String {
        let path = &self.inner.path;
        match target.ip {
            // SocketAddr's Display brackets IPv6 addresses as URLs need.
            Some(ip) => format!("http://{}{path}", SocketAddr::new(ip, target.port)),
            None => format!("{}{path}", target.endpoint.trim_end_matches('/')),
        }
    }

    async fn check(&self, url: &str) -> Result<(), ProbeError> {
        let parts = UrlParts::of(url)
            .map_err(|why| ProbeError(format!("invalid probe URL {url:?}: {why}")))?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtmanager-probe\r\nAccept: */*\r\n\r\n",
            parts.target, parts.authority
        );
        let failed = |why: String| ProbeError(format!("request failed for {url}: {why}"));
        if let Some(kept) = self.inner.pool.take(url, Instant::now()) {
            match answer::exchange(kept.stream, request.as_bytes()).await {
                Ok(answer) => return self.judge(url, answer, kept.opened_at),
                // Closed by the engine while idle: once more, anew.
                Err(Failed::Closed(_)) => {}
                Err(Failed::Broken(why)) => return Err(failed(why)),
            }
        }
        let stream = parts
            .connect()
            .await
            .map_err(|why| ProbeError(format!("cannot connect to {url}: {why}")))?;
        let opened_at = Instant::now();
        match answer::exchange(stream, request.as_bytes()).await {
            Ok(answer) => self.judge(url, answer, opened_at),
            Err(Failed::Closed(why) | Failed::Broken(why)) => Err(failed(why)),
        }
    }

    /// The verdict on `answer`; its connection is kept when it can be.
    fn judge(&self, url: &str, answer: Answer, opened_at: Instant) -> Result<(), ProbeError> {
        if let Some(stream) = answer.reusable {
            let kept = Kept {
                stream,
                opened_at,
                idle_since: Instant::now(),
            };
            self.inner.pool.put(url.to_owned(), kept);
        }
        let status = format!("HTTP {} {}", answer.status, answer.reason);
        let status = status.trim_end();
        match answer.body {
            Err(why) => Err(ProbeError(format!(
                "{url} answered {status} but its body failed: {why}"
            ))),
            Ok(()) if (200..300).contains(&answer.status) => Ok(()),
            Ok(()) => Err(ProbeError(format!("{url} answered {status}"))),
        }
    }

    /// Starts the task that closes idle connections, once.
    fn start_reaper(&self) {
        self.inner.reaper.call_once(|| {
            tokio::spawn(reap(Arc::downgrade(&self.inner)));
        });
    }
}

/// Closes idle connections every half [`IDLE_TIMEOUT`], until the probe
/// (every clone) is dropped.
async fn reap(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 2).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.pool.prune(Instant::now());
    }
}

/// What a probe URL says: where to connect and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct UrlParts<'a> {
    /// `host[:port]`, as the `Host` header.
    authority: &'a str,
    host: &'a str,
    port: u16,
    /// The request target: path and query.
    target: &'a str,
}

impl<'a> UrlParts<'a> {
    /// Splits `http://host[:port]/path`; the host may be a name, an IPv4
    /// address or a bracketed IPv6 address.
    fn of(url: &'a str) -> Result<Self, &'static str> {
        let rest = url
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &url[7..])
            .ok_or("only http:// URLs can be probed")?;
        if !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("only printable ASCII without spaces is allowed");
        }
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(end);
        let target = if target.is_empty() { "/" } else { target };
        if target.starts_with('?') || target.contains('#') {
            return Err("the path must start with / and have no fragment");
        }
        if authority.contains('@') {
            return Err("user information is not allowed");
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or("an unclosed [ in the host")?;
                (host, after.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        if host.is_empty() {
            return Err("no host");
        }
        let port = match port {
            None => 80,
            Some(port) => port.parse().map_err(|_| "an invalid port")?,
        };
        Ok(Self {
            authority,
            host,
            port,
            target,
        })
    }

    /// A new connection: to the address, or to the first address the host
    /// name resolves to that accepts.
    async fn connect(&self) -> Result<TcpStream, String> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host, self.port))
                .await
                .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
                .collect(),
        };
        let mut last = format!("{} resolves to no address", self.host);
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    // Requests are one small write: no reason to delay it.
                    stream.set_nodelay(true).map_err(|e| e.to_string())?;
                    return Ok(stream);
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

impl EngineProbe for HttpProbe {
    fn probe(&self, target: &ProbeTarget) -> impl Future<Output = Result<(), ProbeError>> + Send {
        let url = self.url(target);
        let this = self.clone();
        async move {
            this.start_reaper();
            let timeout = this.inner.timeout;
            match tokio::time::timeout(timeout, this.check(&url)).await {
                Ok(result) => result,
                Err(_) => Err(ProbeError(format!(
                    "{url} did not answer within {timeout:?} (timed out)"
                ))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn target(ip: Option<IpAddr>) -> ProbeTarget {
        ProbeTarget {
            endpoint: "http://rtm-g:8080/".into(),
            ip,
            port: 8080,
        }
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

    #[test]
    fn a_url_splits_into_authority_host_port_and_target() {
        let parts = |url| UrlParts::of(url).map(|p| (p.authority, p.host, p.port, p.target));
        assert_eq!(
            parts("http://rtm-g:8080/healthz"),
            Ok(("rtm-g:8080", "rtm-g", 8080, "/healthz"))
        );
        assert_eq!(
            parts("HTTP://[::1]:9/a?b=c"),
            Ok(("[::1]:9", "::1", 9, "/a?b=c"))
        );
        assert_eq!(parts("http://[::1]/"), Ok(("[::1]", "::1", 80, "/")));
        assert_eq!(parts("http://engine"), Ok(("engine", "engine", 80, "/")));
        for bad in [
            "https://rtm-g/healthz",
            "rtm-g:8080/healthz",
            "http://:8080/healthz",
            "http://rtm-g:80800/healthz",
            "http://rtm-g:x/healthz",
            "http://[::1:8080/healthz",
            "http://user@rtm-g/healthz",
            "http://rtm-g/health z",
            "http://rtm-g/healthz#top",
            "http://rtm-g?x",
        ] {
            assert!(parts(bad).is_err(), "{bad}");
        }
    }

    /// A loopback server answering every request `200` with a short
    /// body, keeping connections; counts the connections it accepted.
    async fn server() -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    // One read is one request here: the probe's requests
                    // are one small write each, answered before the next.
                    while let Ok(1..) = conn.read(&mut buf).await {
                        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if conn.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    fn at(addr: SocketAddr) -> ProbeTarget {
        ProbeTarget {
            endpoint: String::new(),
            ip: Some(addr.ip()),
            port: addr.port(),
        }
    }

    #[tokio::test]
    async fn a_kept_connection_is_used_for_at_most_fresh_every() {
        let (addr, accepted) = server().await;
        let probe = HttpProbe::new(ProbeConfig::default());
        let url = probe.url(&at(addr));
        probe.probe(&at(addr)).await.expect("first");
        probe.probe(&at(addr)).await.expect("second");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "kept and reused");

        let minute_ago = Instant::now().checked_sub(FRESH_EVERY).expect("uptime");
        let mut kept = probe.inner.pool.take(&url, Instant::now()).expect("kept");
        kept.opened_at = minute_ago;
        probe.inner.pool.put(url.clone(), kept);
        probe.probe(&at(addr)).await.expect("third");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "a minute old: anew");
        probe.probe(&at(addr)).await.expect("fourth");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "the new one is kept");
    }

    #[tokio::test]
    async fn connections_idle_for_the_idle_timeout_are_closed_and_not_used() {
        let (addr, accepted) = server().await;
        let probe = HttpProbe::new(ProbeConfig::default());
        let url = probe.url(&at(addr));
        probe.probe(&at(addr)).await.expect("first");
        let long_idle = Instant::now().checked_sub(IDLE_TIMEOUT).expect("uptime");
        let mut kept = probe.inner.pool.take(&url, Instant::now()).expect("kept");
        kept.idle_since = long_idle;
        probe.inner.pool.put(url.clone(), kept);
        probe.probe(&at(addr)).await.expect("second");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "idle too long: anew");

        assert_eq!(probe.inner.pool.len(), 1);
        probe.inner.pool.prune(Instant::now() + IDLE_TIMEOUT / 2);
        assert_eq!(probe.inner.pool.len(), 1, "not idle long enough");
        probe.inner.pool.prune(Instant::now() + IDLE_TIMEOUT);
        assert_eq!(probe.inner.pool.len(), 0, "closed");
    }
}
