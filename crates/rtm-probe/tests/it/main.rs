//! Integration tests of [`rtm_probe::HttpProbe`] against real HTTP servers
//! on 127.0.0.1, started by each test (tokio `TcpListener`): 2xx, 500, a
//! server that never answers in time, a refused port, the choice between
//! the container IP and the endpoint, the kept connection, and answers of
//! every framing and of every way to be broken.

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
#[derive(Debug, Clone)]
enum Reply {
    Status(u16),
    /// Answers only after a long while (longer than any probe timeout).
    Slow,
    /// Writes these bytes as the answer, then closes the connection when
    /// `close` (without saying so unless the bytes do).
    Raw {
        answer: Arc<str>,
        close: bool,
    },
    /// Answers a connection's first request `200`; at its second, closes
    /// the connection without an answer (as a server does that timed the
    /// idle connection out just as the request came).
    FirstOnly,
}

impl Reply {
    fn raw(answer: &str, close: bool) -> Reply {
        Reply::Raw {
            answer: answer.into(),
            close,
        }
    }
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
                tokio::spawn(handle(conn, reply.clone(), seen.clone()));
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

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Serves requests on one (keep-alive) connection until the client closes
/// it or asks to (`Connection: close`).
async fn handle(mut conn: TcpStream, reply: Reply, (seen, heads): (Log, Log)) {
    let mut buf = Vec::new();
    for nth in 1.. {
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
        let code = match &reply {
            Reply::Status(code) => *code,
            Reply::Slow => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                200
            }
            Reply::Raw { answer, close } => {
                if conn.write_all(answer.as_bytes()).await.is_err() || *close {
                    return;
                }
                continue;
            }
            Reply::FirstOnly if nth > 1 => return,
            Reply::FirstOnly => 200,
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
async fn probes_share_one_kept_connection_and_say_who_they_are() {
    let server = Server::start(Reply::Status(200)).await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..4 {
        p.probe(&by_ip(server.addr)).await.unwrap();
    }
    assert_eq!(server.requests().len(), 4);
    assert_eq!(server.accepted(), 1, "one connection, kept");
    let heads = server.heads.lock().unwrap().clone();
    let expected = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nUser-Agent: rtmanager-probe\r\nAccept: */*\r\n\r\n",
        server.addr
    );
    assert!(heads.iter().all(|h| *h == expected), "{heads:?}");
}

#[tokio::test]
async fn a_kept_connection_the_engine_closed_at_the_request_costs_no_failure() {
    let server = Server::start(Reply::FirstOnly).await;
    let p = probe(Duration::from_secs(2));
    for nth in 1..=3 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()), "probe {nth}");
    }
    // 1st on A; 2nd on A (closed unanswered), again on B; 3rd likewise on C.
    assert_eq!(server.requests().len(), 5);
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn an_engine_that_closes_each_connection_unannounced_is_healthy() {
    // Answers without saying it closes, then closes.
    let server = Server::start(Reply::raw(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        true,
    ))
    .await;
    let p = probe(Duration::from_secs(2));
    for nth in 1..=3 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()), "probe {nth}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.requests().len(), 3, "each request sent once");
    assert_eq!(server.accepted(), 3);
}

#[tokio::test]
async fn an_answer_that_says_it_closes_is_not_kept() {
    let server = Server::start(Reply::raw(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
        false,
    ))
    .await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..2 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()));
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_chunked_answer_with_extensions_and_trailers_is_read_whole_and_kept() {
    let server = Server::start(Reply::raw(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
         4;note=x\r\nokok\r\nA\r\n0123456789\r\n0\r\nX-Check: fine\r\n\r\n",
        false,
    ))
    .await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..3 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()));
    }
    assert_eq!(server.accepted(), 1, "the connection was kept");
}

#[tokio::test]
async fn interim_answers_are_skipped() {
    let server = Server::start(Reply::raw(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
         HTTP/1.1 204 No Content\r\n\r\n",
        false,
    ))
    .await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..2 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()));
    }
    assert_eq!(server.accepted(), 1, "204 has no body: kept");
}

#[tokio::test]
async fn an_http_1_0_answer_without_a_length_is_read_to_its_close() {
    let server = Server::start(Reply::raw("HTTP/1.0 200 OK\r\n\r\nall good", true)).await;
    let p = probe(Duration::from_secs(2));
    for _ in 0..2 {
        assert_eq!(p.probe(&by_ip(server.addr)).await, Ok(()));
    }
    assert_eq!(server.accepted(), 2);
}

#[tokio::test]
async fn a_body_longer_than_read_is_judged_by_its_status_and_not_kept() {
    let body = "x".repeat(usize::try_from(rtm_probe::MAX_BODY).unwrap() + 1000);
    for (code, healthy) in [(200, true), (500, false)] {
        let server = Server::start(Reply::raw(
            &format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
            false,
        ))
        .await;
        let p = probe(Duration::from_secs(2));
        for _ in 0..2 {
            let result = p.probe(&by_ip(server.addr)).await;
            assert_eq!(result.is_ok(), healthy, "{result:?}");
        }
        assert_eq!(server.accepted(), 2, "HTTP {code}: not kept");
    }
}

#[tokio::test]
async fn broken_answers_are_failures_that_say_what_broke() {
    let huge = format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n", "y".repeat(20_000));
    let cases: [(&str, &str); 7] = [
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            "its body failed",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
            "Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "Content-Length",
        ),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "chunk size",
        ),
        ("SSH-2.0-OpenSSH_9.2\r\n", "not an HTTP/1.x answer"),
        ("HTTP/1.1 200 OK\r\nContent-Le", "inside the answer's head"),
        (&huge, "larger than 16 KiB"),
    ];
    for (answer, says) in cases {
        let server = Server::start(Reply::raw(answer, true)).await;
        let err = probe(Duration::from_secs(2))
            .probe(&by_ip(server.addr))
            .await
            .unwrap_err();
        assert!(err.0.contains(says), "{answer:.60?}: {err}");
        assert!(err.0.contains(&server.addr.to_string()), "{err}");
    }
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_is_a_failure() {
    let server = Server::start(Reply::raw("", true)).await;
    let err = probe(Duration::from_secs(2))
        .probe(&by_ip(server.addr))
        .await
        .unwrap_err();
    assert!(err.0.contains("request failed for"), "{err}");
    assert!(err.0.contains("closed before an answer"), "{err}");
    assert_eq!(
        server.requests().len(),
        1,
        "a new connection is not retried"
    );
}

#[tokio::test]
async fn an_endpoint_by_name_is_resolved_and_named_in_the_host_header() {
    let server = Server::start(Reply::Status(200)).await;
    let target = ProbeTarget {
        endpoint: format!("http://localhost:{}/", server.addr.port()),
        ip: None,
        port: 1,
    };
    assert_eq!(probe(Duration::from_secs(2)).probe(&target).await, Ok(()));
    let heads = server.heads.lock().unwrap().clone();
    let host = format!("\r\nHost: localhost:{}\r\n", server.addr.port());
    assert!(heads[0].contains(&host), "{heads:?}");

    let nowhere = ProbeTarget {
        endpoint: "http://rtm-nowhere.invalid:8080".into(),
        ip: None,
        port: 8080,
    };
    let err = probe(Duration::from_secs(2))
        .probe(&nowhere)
        .await
        .unwrap_err();
    assert!(
        err.0.contains("cannot resolve rtm-nowhere.invalid"),
        "{err}"
    );
}
