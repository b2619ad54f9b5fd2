//! A loopback TCP proxy that can freeze, like a network partition (or a
//! hung peer) that no side has noticed yet: while frozen it forwards
//! nothing but keeps every connection open. [`Proxy::freeze_answers`]
//! freezes one way only: what the client sends still arrives (and is
//! acted on), the answers do not come back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct Proxy {
    pub addr: SocketAddr,
    /// Client to server.
    requests: Arc<AtomicBool>,
    /// Server to client.
    answers: Arc<AtomicBool>,
    _rt: tokio::runtime::Runtime,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Proxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let requests = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicBool::new(false));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (req, ans) = (requests.clone(), answers.clone());
        rt.spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                    continue;
                };
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                for (mut from, mut to, f) in [
                    (
                        Box::new(ir) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(ow) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                        req.clone(),
                    ),
                    (Box::new(or), Box::new(iw), ans.clone()),
                ] {
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            while f.load(Ordering::Relaxed) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    while f.load(Ordering::Relaxed) {
                                        tokio::time::sleep(Duration::from_millis(5)).await;
                                    }
                                    if to.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        Proxy {
            addr,
            requests,
            answers,
            _rt: rt,
        }
    }

    /// Freezes both ways (`true`) or thaws.
    pub fn freeze(&self, frozen: bool) {
        self.requests.store(frozen, Ordering::Relaxed);
        self.answers.store(frozen, Ordering::Relaxed);
    }

    /// Freezes the answers only (`true`) or thaws them.
    pub fn freeze_answers(&self, frozen: bool) {
        self.answers.store(frozen, Ordering::Relaxed);
    }
}
