//! A gRPC server on its own runtime for the tests; stopped when dropped.

use std::time::Duration;

use varwatch::transport::grpc::GrpcService;

/// A server on its own runtime; stopped when dropped.
pub struct Server {
    pub addr: String,
    rt: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    pub fn start<S>(service: GrpcService<S>) -> Server
    where
        S: varwatch::AsyncVarStore + Clone + Send + Sync + 'static,
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            service
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        Server {
            addr,
            rt: Some(rt),
            stop: Some(stop),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}
