//! A TCP proxy on loopback, standing for what is between two programs in production: a
//! network link that can be cut and restored (between an agent and Warren), a load balancer
//! that spreads connections over several Warren replicas, or a Kubernetes Service that is
//! moved from a failed PostgreSQL primary to the promoted standby (CloudNativePG's `-rw`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// `http://{addr}`, for HTTP clients.
    pub base: String,
    up: Arc<watch::Sender<bool>>,
    targets: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Proxy {
    /// A proxy to one server.
    pub async fn start(target: SocketAddr) -> Self {
        Self::round_robin(vec![target]).await
    }

    /// A proxy that hands each new connection to the next of `targets` in turn, and to the
    /// one after when a target refuses it (as a load balancer skips a dead backend).
    pub async fn round_robin(targets: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(watch::channel(true).0);
        let targets = Arc::new(Mutex::new(targets));
        let (link, pool) = (up.clone(), targets.clone());
        let next = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watch = link.subscribe();
                if !*watch.borrow() {
                    continue; // dropped at once: the client sees a network error
                }
                let (pool, next) = (pool.clone(), next.clone());
                tokio::spawn(async move {
                    let Some(mut outbound) = connect(&pool, &next).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            up,
            targets,
        }
    }

    /// Drops every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// New connections go to `targets` from now on; open ones stay where they are.
    pub fn point_at(&self, targets: Vec<SocketAddr>) {
        *self.targets.lock().unwrap() = targets;
    }
}

/// A connection to the next target that takes one, trying each once.
async fn connect(targets: &Mutex<Vec<SocketAddr>>, next: &AtomicUsize) -> Option<TcpStream> {
    let targets = targets.lock().unwrap().clone();
    for _ in 0..targets.len() {
        let target = targets[next.fetch_add(1, Ordering::Relaxed) % targets.len()];
        if let Ok(stream) = TcpStream::connect(target).await {
            return Some(stream);
        }
    }
    None
}
