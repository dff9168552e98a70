//! A tiny TCP forwarder to stage a dependency outage: [`TcpProxy::cut`]
//! closes every live connection and refuses new ones (accepted then closed
//! at once, as a dead server would); [`TcpProxy::stall`] black-holes the
//! path instead (bytes are held, connections stay open, new ones are
//! accepted and left waiting: a network partition); [`TcpProxy::restore`]
//! forwards again (stalled connections resume).
//! The app only ever sees a dependency that went away and came back on the
//! same address, which is what an operator's outage looks like.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

struct State {
    cut: AtomicBool,
    /// `true` while stalled.
    stalled: watch::Sender<bool>,
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
        let state = Arc::new(State {
            cut: AtomicBool::new(false),
            stalled: watch::channel(false).0,
            live: Mutex::new(Vec::new()),
            forwarded: AtomicU64::new(0),
        });
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
                    let task = tokio::spawn(forward(client, upstream, state.stalled.subscribe()));
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

    /// Black-holes the path: nothing moves, nothing is closed.
    pub fn stall(&self) {
        self.state.stalled.send_replace(true);
    }

    /// Forwards again (new connections, and stalled ones resume).
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.stalled.send_replace(false);
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

async fn forward(client: TcpStream, upstream: SocketAddr, stalled: watch::Receiver<bool>) {
    if !flowing(&mut stalled.clone()).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Either direction ending ends the connection (both sockets drop).
    tokio::select! {
        () = pump(cr, sw, stalled.clone()) => {}
        () = pump(sr, cw, stalled) => {}
    }
}

/// Copies `from` to `to`, holding each chunk while the path is stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !flowing(&mut stalled).await {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !flowing(&mut stalled).await || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Waits while stalled; false when the proxy is gone.
async fn flowing(stalled: &mut watch::Receiver<bool>) -> bool {
    stalled.wait_for(|s| !*s).await.is_ok()
}
