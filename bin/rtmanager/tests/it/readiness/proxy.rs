//! A tiny TCP forwarder to stage a dependency outage: [`TcpProxy::cut`]
//! closes every live connection and refuses new ones (accepted then closed
//! at once, as a dead server would), [`TcpProxy::restore`] forwards again.
//! The app only ever sees a dependency that went away and came back on the
//! same address, which is what an operator's outage looks like.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

#[derive(Default)]
struct State {
    cut: AtomicBool,
    live: Mutex<Vec<AbortHandle>>,
    /// Connections forwarded since the start (for diagnostics).
    forwarded: AtomicU64,
}

/// Forwards `127.0.0.1:<port>` to `upstream` until dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State::default());
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    // Checked and registered under the lock `cut` takes, so
                    // no connection slips through a cut.
                    let mut live = state.live.lock().expect("proxy state");
                    if state.cut.load(Ordering::SeqCst) {
                        drop(client); // refused: closed at once
                        continue;
                    }
                    let task = tokio::spawn(forward(client, upstream));
                    state.forwarded.fetch_add(1, Ordering::Relaxed);
                    live.retain(|h| !h.is_finished());
                    live.push(task.abort_handle());
                }
            }
        });
        TcpProxy {
            addr,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every live connection and refuses new ones.
    pub fn cut(&self) {
        let mut live = self.state.live.lock().expect("proxy state");
        self.state.cut.store(true, Ordering::SeqCst);
        for h in live.drain(..) {
            h.abort(); // drops both sockets: each side sees the peer close
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    pub fn forwarded(&self) -> u64 {
        self.state.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Never panic in drop (a failing test may be unwinding).
        if let Ok(mut live) = self.state.live.lock() {
            for h in live.drain(..) {
                h.abort();
            }
        }
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
