//! The `VarWatch` service: each RPC is one [`SessionStore`] call. Store
//! operations never block on I/O and hold their locks briefly, so they run
//! directly on the async worker.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::auth::BearerCheck;
use super::convert::{
    constraints_from, metadata_from, session_to, status, value_from, var_type_from, variable_to,
};
use super::proto::var_watch_server::{VarWatch, VarWatchServer};
use super::proto::{self, item_result, watch_request};
use super::watch::{self, ResponseStream, WatchConfig};
use crate::{BatchUpdate, SessionOptions, SessionStore, UpdateOptions, VarDef};
use tonic::service::interceptor::InterceptedService;

/// Serves a [`SessionStore`] over gRPC.
///
/// Limits (all configurable): requests up to 4 MiB, values up to 4 MiB, at
/// most 10 000 items per batch, multi-get or watch, 10 000 concurrent
/// streams per connection. Remote watches: heartbeats every 5 s, a client
/// silent for 15 s is dropped, at most 256 events per message.
#[derive(Clone, Debug)]
pub struct GrpcService {
    store: SessionStore,
    max_message_bytes: usize,
    max_value_bytes: usize,
    max_batch_items: usize,
    max_concurrent_streams: u32,
    heartbeat_interval: Duration,
    heartbeat_timeout: Duration,
    max_events_per_message: usize,
    /// Set when `serve`'s shutdown fires: open watch streams end, so that the
    /// graceful shutdown (which waits for every connection) can finish.
    closing: tokio::sync::watch::Receiver<bool>,
    close: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    token: Option<std::sync::Arc<str>>,
}

impl GrpcService {
    /// A service over `store` with the default limits.
    pub fn new(store: SessionStore) -> GrpcService {
        let (close, closing) = tokio::sync::watch::channel(false);
        GrpcService {
            store,
            max_message_bytes: 4 << 20,
            max_value_bytes: 4 << 20,
            max_batch_items: 10_000,
            max_concurrent_streams: 10_000,
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_timeout: Duration::from_secs(15),
            max_events_per_message: 256,
            closing,
            close: std::sync::Arc::new(close),
            token: None,
        }
    }

    /// How often a remote watch sends a heartbeat.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = d.max(Duration::from_millis(1));
        self
    }

    /// How long a remote watch may hear nothing from its client before the
    /// server closes it and frees everything it held.
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.heartbeat_timeout = d;
        self
    }

    /// Most HTTP/2 streams (calls and watches) per connection.
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = n;
        self
    }

    fn watch_config(&self) -> WatchConfig {
        WatchConfig {
            heartbeat_interval: self.heartbeat_interval,
            heartbeat_timeout: self.heartbeat_timeout,
            max_variables: self.max_batch_items,
            max_events_per_message: self.max_events_per_message,
            closing: self.closing.clone(),
        }
    }

    /// Largest request message accepted (bytes).
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = n;
        self
    }

    /// Largest string or vector value accepted (bytes).
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.max_value_bytes = n;
        self
    }

    /// Most items in one batch update or multi-get.
    pub fn max_batch_items(mut self, n: usize) -> Self {
        self.max_batch_items = n;
        self
    }

    /// The tonic service, for adding to your own `tonic::transport::Server`.
    pub fn into_server(self) -> InterceptedService<VarWatchServer<GrpcService>, BearerCheck> {
        let max = self.max_message_bytes;
        let check = BearerCheck(self.token.clone());
        let server = VarWatchServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX);
        InterceptedService::new(server, check)
    }

    /// Requires `authorization: Bearer <token>` on every call (compared in
    /// constant time; `UNAUTHENTICATED` otherwise).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    /// Ends every open watch stream (with `UNAVAILABLE`, so that clients
    /// reconnect elsewhere or later). `serve` does this when its shutdown
    /// fires; call it yourself when serving through [`into_server`](Self::into_server).
    pub fn close_watches(&self) {
        let _ = self.close.send(true);
    }

    /// Serves on `listener` until `shutdown` completes; then ends open
    /// watches and waits for connections to close.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let close = self.close.clone();
        let shutdown = async move {
            shutdown.await;
            let _ = close.send(true);
        };
        let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .max_concurrent_streams(Some(self.max_concurrent_streams))
            .add_service(self.into_server())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }

    fn check_items(&self, n: usize) -> Result<(), Status> {
        if n > self.max_batch_items {
            return Err(Status::resource_exhausted(format!(
                "{n} items in one request; the server's limit is {}",
                self.max_batch_items
            )));
        }
        Ok(())
    }
}

fn ok<T>(t: T) -> Result<Response<T>, Status> {
    Ok(Response::new(t))
}

fn session_options(r: proto::CreateSessionRequest) -> (String, SessionOptions) {
    let mut opts = SessionOptions::new();
    opts.ttl = r.ttl_ms.map(Duration::from_millis);
    opts.metadata = metadata_from(r.metadata);
    (r.session, opts)
}

fn update_options(
    expected_version: Option<u64>,
    source: Option<String>,
    metadata: std::collections::HashMap<String, String>,
) -> UpdateOptions {
    let mut opts = UpdateOptions::new();
    opts.expected_version = expected_version;
    opts.source = source;
    opts.metadata = metadata_from(metadata);
    opts
}

#[tonic::async_trait]
impl VarWatch for GrpcService {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        req: Request<Streaming<proto::WatchRequest>>,
    ) -> Result<Response<ResponseStream>, Status> {
        let cfg = self.watch_config();
        let mut inbound = req.into_inner();
        let first = tokio::time::timeout(cfg.heartbeat_timeout, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no Subscribe message before the heartbeat timeout"))??;
        let sub = match first.and_then(|m| m.kind) {
            Some(watch_request::Kind::Subscribe(s)) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of a watch must be a Subscribe",
                ));
            }
        };
        let opened = watch::open(&self.store, sub, &cfg)?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(watch::run(opened, inbound, tx, cfg));
        Ok(Response::new(ResponseStream::new(rx)))
    }

    async fn create_session(
        &self,
        req: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::SessionInfo>, Status> {
        let (id, opts) = session_options(req.into_inner());
        ok(session_to(&self.store.create_session(&id, opts).map_err(status)?))
    }

    async fn get_or_create_session(
        &self,
        req: Request<proto::CreateSessionRequest>,
    ) -> Result<Response<proto::SessionInfo>, Status> {
        let (id, opts) = session_options(req.into_inner());
        ok(session_to(
            &self.store.get_or_create_session(&id, opts).map_err(status)?,
        ))
    }

    async fn get_session(
        &self,
        req: Request<proto::SessionRequest>,
    ) -> Result<Response<proto::SessionInfo>, Status> {
        let r = req.into_inner();
        ok(session_to(&self.store.session(&r.session).map_err(status)?))
    }

    async fn delete_session(
        &self,
        req: Request<proto::SessionRequest>,
    ) -> Result<Response<proto::Empty>, Status> {
        self.store
            .delete_session(&req.into_inner().session)
            .map_err(status)?;
        ok(proto::Empty {})
    }

    async fn list_sessions(
        &self,
        _req: Request<proto::Empty>,
    ) -> Result<Response<proto::ListSessionsResponse>, Status> {
        ok(proto::ListSessionsResponse {
            sessions: self.store.list_sessions(),
        })
    }

    async fn register_variable(
        &self,
        req: Request<proto::RegisterVariableRequest>,
    ) -> Result<Response<proto::RegisterVariableResponse>, Status> {
        let r = req.into_inner();
        let mut def = VarDef::new(
            r.name,
            var_type_from(r.r#type)?,
            value_from(r.value, self.max_value_bytes)?,
        );
        def.constraints = constraints_from(r.constraints)?;
        def.metadata = metadata_from(r.metadata);
        let id = self.store.register(&r.session, def).map_err(status)?;
        ok(proto::RegisterVariableResponse { id })
    }

    async fn get_variable(
        &self,
        req: Request<proto::VariableRequest>,
    ) -> Result<Response<proto::Variable>, Status> {
        let r = req.into_inner();
        ok(variable_to(
            &self.store.get(&r.session, &r.variable).map_err(status)?,
        ))
    }

    async fn get_variables(
        &self,
        req: Request<proto::GetVariablesRequest>,
    ) -> Result<Response<proto::GetVariablesResponse>, Status> {
        let r = req.into_inner();
        self.check_items(r.variables.len())?;
        let got = self.store.get_many(&r.session, &r.variables).map_err(status)?;
        ok(proto::GetVariablesResponse {
            found: got
                .found
                .iter()
                .map(|(ident, v)| proto::FoundVariable {
                    identifier: ident.clone(),
                    variable: Some(variable_to(v)),
                })
                .collect(),
            missing: got.missing,
        })
    }

    async fn list_variables(
        &self,
        req: Request<proto::ListVariablesRequest>,
    ) -> Result<Response<proto::ListVariablesResponse>, Status> {
        let r = req.into_inner();
        let pattern = (!r.pattern.is_empty()).then_some(r.pattern.as_str());
        let vars = self.store.list_variables(&r.session, pattern).map_err(status)?;
        ok(proto::ListVariablesResponse {
            variables: vars.iter().map(variable_to).collect(),
        })
    }

    async fn update_variable(
        &self,
        req: Request<proto::UpdateVariableRequest>,
    ) -> Result<Response<proto::UpdateVariableResponse>, Status> {
        let r = req.into_inner();
        let value = value_from(r.value, self.max_value_bytes)?;
        let opts = update_options(r.expected_version, r.source, r.metadata);
        let version = self
            .store
            .update_with(&r.session, &r.variable, value, &opts)
            .map_err(status)?;
        ok(proto::UpdateVariableResponse { version })
    }

    async fn update_variables(
        &self,
        req: Request<proto::UpdateVariablesRequest>,
    ) -> Result<Response<proto::UpdateVariablesResponse>, Status> {
        let r = req.into_inner();
        self.check_items(r.items.len())?;
        // Decode every item first: a malformed one rejects the request and
        // changes nothing, atomic or not.
        let mut items = Vec::with_capacity(r.items.len());
        for (i, item) in r.items.into_iter().enumerate() {
            let value = value_from(item.value, self.max_value_bytes).map_err(|s| {
                Status::invalid_argument(format!("item {i} (`{}`): {}", item.variable, s.message()))
            })?;
            let mut u = BatchUpdate::new(item.variable, value);
            u.expected_version = item.expected_version;
            items.push(u);
        }
        let opts = update_options(None, r.source, r.metadata);
        let results = if r.atomic {
            let versions = self
                .store
                .update_atomic(&r.session, items, &opts)
                .map_err(status)?;
            versions
                .into_iter()
                .map(item_result::Result::Version)
                .collect::<Vec<_>>()
        } else {
            self.store
                .update_best_effort(&r.session, items, &opts)
                .map_err(status)?
                .into_iter()
                .map(|r| match r {
                    Ok(v) => item_result::Result::Version(v),
                    Err(e) => item_result::Result::Error(e.to_string()),
                })
                .collect()
        };
        ok(proto::UpdateVariablesResponse {
            results: results
                .into_iter()
                .map(|r| proto::ItemResult { result: Some(r) })
                .collect(),
        })
    }

    async fn delete_variable(
        &self,
        req: Request<proto::VariableRequest>,
    ) -> Result<Response<proto::Empty>, Status> {
        let r = req.into_inner();
        self.store
            .delete_variable(&r.session, &r.variable)
            .map_err(status)?;
        ok(proto::Empty {})
    }
}
