//! The engine-probe contract suite (`rtm_domain::contract::probe`) against
//! the real HTTP probe and real TCP servers on loopback: the very cases the
//! scripted fake passes.

use std::net::SocketAddr;
use std::time::Duration;

use rtm_domain::contract::probe::ProbeSubject;
use rtm_domain::ports::ProbeTarget;
use rtm_probe::HttpProbe;

use super::{probe, Reply, Server};

/// The HTTP probe, and loopback servers started on demand (they live as
/// long as the test's runtime).
struct Subject {
    probe: HttpProbe,
}

fn target(addr: SocketAddr) -> ProbeTarget {
    ProbeTarget {
        endpoint: format!("http://{addr}"),
        ip: Some(addr.ip()),
        port: addr.port(),
    }
}

impl ProbeSubject for Subject {
    type Probe = HttpProbe;

    fn probe(&self) -> &HttpProbe {
        &self.probe
    }

    async fn answering(&self, status: u16) -> ProbeTarget {
        target(Server::start(Reply::Status(status)).await.addr)
    }

    /// A port that was just free: nothing listens on it.
    async fn refusing(&self) -> ProbeTarget {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        target(addr)
    }
}

async fn setup() -> ((), Subject) {
    (
        (),
        Subject {
            probe: probe(Duration::from_secs(5)),
        },
    )
}

rtm_domain::probe_contract!(setup);
