//! Integration tests of [`rtm_probe::HttpProbe`] against real HTTP servers
//! on 127.0.0.1, started by each test (tokio `TcpListener`): 2xx, 500, a
//! server that never answers in time, a refused port, and the choice
//! between the container IP and the endpoint.

// Test helpers outside `#[test]` fns: a failed setup should panic loudly.
#![allow(clippy::unwrap_used)]

mod contract;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtm_domain::ports::{EngineProbe, ProbeTarget};
use rtm_probe::{HttpProbe, ProbeConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Lines a test server records.
type Log = Arc<Mutex<Vec<String>>>;

/// What a test server does with each request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Answers only after a long while (longer than any probe timeout).
    Slow,
}

/// A tiny HTTP/1.1 server that records each request line.
struct Server {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    /// Connections accepted so far.
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    /// Every request head, whole.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(reply: Reply) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = (Arc::clone(&requests), Arc::clone(&heads));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            // Ends when the test's runtime shuts down.
            while let Ok((conn, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(handle(conn, reply, seen.clone()));
            }
        });
        Server {
            addr,
            requests,
            accepted,
            heads,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves requests on one (keep-alive) connection until the client closes
/// it or asks to (`Connection: close`).
async fn handle(mut conn: TcpStream, reply: Reply, (seen, heads): (Log, Log)) {
    let mut buf = Vec::new();
    loop {
        // Read one request head (bounded).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return;
            }
            let mut chunk = [0u8; 1024];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        seen.lock()
            .unwrap()
            .push(head.lines().next().unwrap_or("").to_owned());
        heads.lock().unwrap().push(head.clone());
        let code = match reply {
            Reply::Status(code) => code,
            Reply::Slow => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                200
            }
        };
        let body = format!("{{\"status\":{code}}}");
        let response = format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        // As HTTP/1.1 servers do: a request asking to close is the last.
        if head.to_ascii_lowercase().contains("\r\nconnection: close") {
            return;
        }
    }
}

fn probe(timeout: Duration) -> HttpProbe {
    HttpProbe::new(ProbeConfig {
        path: "/healthz".into(),
        timeout,
    })
}

/// A target reaching `addr` through its IP; the endpoint is unresolvable
/// from here (as `rtm-<game>` is from the host).
fn by_ip(addr: SocketAddr) -> ProbeTarget {
    ProbeTarget {
        endpoint: "http://rtm-nowhere.invalid:1".into(),
        ip: Some(addr.ip()),
        port: addr.port(),
    }
}

#[tokio::test]
async fn a_2xx_answer_is_healthy_and_the_path_is_requested() {
    for code in [200, 204] {
        let server = Server::start(Reply::Status(code)).await;
        let p = probe(Duration::from_secs(5));
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()), "HTTP {code}");
        // A second probe reuses the kept-alive connection.
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()));
        assert_eq!(
            server.requests(),
            ["GET /healthz HTTP/1.1", "GET /healthz HTTP/1.1"]
        );
    }
}

#[tokio::test]
async fn a_500_is_a_failure_naming_the_status() {
    let server = Server::start(Reply::Status(500)).await;
    let err = probe(Duration::from_secs(5))
        .probe(&by_ip(server.addr))
        .await
        .unwrap_err();
    assert!(err.0.contains("HTTP 500"), "{err}");
    assert!(err.0.contains(&server.addr.to_string()), "{err}");
    let server = Server::start(Reply::Status(503)).await;
    let err = probe(Duration::from_secs(5))
        .probe(&by_ip(server.addr))
        .await
        .unwrap_err();
    assert!(err.0.contains("HTTP 503"), "{err}");
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout() {
    let server = Server::start(Reply::Slow).await;
    let err = probe(Duration::from_millis(200))
        .probe(&by_ip(server.addr))
        .await
        .unwrap_err();
    assert!(err.0.contains("timed out"), "{err}");
    assert_eq!(
        server.requests().len(),
        1,
        "the request did reach the server"
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_failure_saying_so() {
    // A port that was just free: bind, note it, close.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = probe(Duration::from_secs(5))
        .probe(&by_ip(addr))
        .await
        .unwrap_err();
    assert!(err.0.contains("cannot connect"), "{err}");
    assert!(err.0.to_lowercase().contains("refused"), "{err}");
}

#[tokio::test]
async fn the_ip_is_preferred_over_the_endpoint_and_the_endpoint_is_the_fallback() {
    let via_ip = Server::start(Reply::Status(200)).await;
    let via_endpoint = Server::start(Reply::Status(200)).await;
    let p = probe(Duration::from_secs(5));
    let target = ProbeTarget {
        endpoint: format!("http://{}", via_endpoint.addr),
        ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        port: via_ip.addr.port(),
    };
    assert_eq!(p.probe(&target).await, Ok(()));
    assert_eq!(via_ip.requests().len(), 1);
    assert!(via_endpoint.requests().is_empty());

    let no_ip = ProbeTarget { ip: None, ..target };
    assert_eq!(p.probe(&no_ip).await, Ok(()));
    assert_eq!(via_endpoint.requests(), ["GET /healthz HTTP/1.1"]);
    assert_eq!(via_ip.requests().len(), 1);
}

#[tokio::test]
async fn probes_reuse_a_kept_connection_after_a_first_one_that_ends_its_own() {
    let server = Server::start(Reply::Status(200)).await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..4 {
        p.probe(&by_ip(server.addr)).await.unwrap();
    }
    assert_eq!(server.requests().len(), 4);
    let heads = server.heads.lock().unwrap().clone();
    let closing: Vec<bool> = heads
        .iter()
        .map(|h| h.to_ascii_lowercase().contains("\r\nconnection: close"))
        .collect();
    assert_eq!(closing, [true, false, false, false], "{heads:?}");
    // The first probe asked for `Connection: close` (a fresh connection
    // checks the listener); the next three shared one kept connection.
    assert_eq!(
        server.accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one connection for the first probe, one kept for the rest"
    );
}
