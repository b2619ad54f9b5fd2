//! The `VarWatch` gRPC service: each RPC decodes its message into a
//! [`Request`], asks the [`Service`], and encodes the answer; the `Watch`
//! stream is the service's watch stream with wire messages on both sides.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tokio::net::TcpListener;
use tonic::codegen::http;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request as Request_, Response as Response_, Status, Streaming};

use super::auth::{Gate, conn_of};
use super::conn::{ConnLimits, Incoming, StreamGuard};
use super::convert::{
    code_name, constraints_from, metadata_from, request_from, response_to, session_to, status, value_from,
    var_type_from, variable_to,
};
use super::proto::var_watch_server::{VarWatch, VarWatchServer};
use super::proto::{self, item_result};
use crate::transport::{ClientMessage, Request, Response, ServerStream, Service};
use crate::{AsyncVarStore, BatchUpdate, SessionOptions, SessionStore, UpdateOptions, VarDef};

/// Serves a store (by default a [`SessionStore`]; any [`AsyncVarStore`])
/// over gRPC: the transport-neutral [`Service`]
/// behind the `VarWatch` protocol, with gRPC health checking
/// (`grpc.health.v1`) and server reflection (`grpc.reflection.v1` and
/// `v1alpha`), so that `grpcurl` and load balancers work out of the box.
///
/// Limits (all configurable; [`serve`](Self::serve) applies the connection
/// ones): requests up to 4 MiB (RESOURCE_EXHAUSTED past it), 10 000
/// connections (calls on one accepted past it answer RESOURCE_EXHAUSTED),
/// 10 000 concurrent HTTP/2 streams per connection, a connection closed when
/// it sends no byte within 10 s or has no watch and starts no call for 60 s,
/// and the [`Service`]'s own (values, items per request, watches per
/// connection and in all, heartbeats, events and bytes per message).
#[derive(Clone, Debug)]
#[must_use = "a service does nothing until served"]
pub struct GrpcService<S = SessionStore> {
    service: Service<S>,
    /// `None`: the value limit plus the metadata limit plus 64 KiB, so that
    /// a value at its limit always fits a request.
    max_message_bytes: Option<usize>,
    max_concurrent_streams: u32,
    token: Option<std::sync::Arc<str>>,
    conn: ConnLimits,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ServerTlsConfig>,
    probe: Option<HealthProbe>,
}

/// A check of the store behind the server, run every `every` by
/// [`GrpcService::serve`] (see [`GrpcService::health_probe`]).
#[derive(Clone)]
struct HealthProbe {
    every: Duration,
    check: std::sync::Arc<dyn Fn() -> crate::transport::BoxFuture<bool> + Send + Sync>,
}

impl std::fmt::Debug for HealthProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthProbe")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncVarStore + Clone + Send + Sync + 'static> GrpcService<S> {
    /// A service over `store` with the default limits.
    pub fn new(store: S) -> GrpcService<S> {
        GrpcService::from_service(Service::new(store))
    }

    /// Serves `service` (configured as you like).
    pub fn from_service(service: Service<S>) -> GrpcService<S> {
        GrpcService {
            service,
            max_message_bytes: None,
            max_concurrent_streams: 10_000,
            token: None,
            conn: ConnLimits::default(),
            #[cfg(feature = "tls")]
            tls: None,
            probe: None,
        }
    }

    /// Checks the store behind the server every `every` (at least 10 ms)
    /// with `check`, which answers whether the store can serve (an etcd
    /// store: whether its cluster answers a linearizable read, see
    /// [`AsyncEtcdStore::check`](crate::etcd::AsyncEtcdStore::check) with
    /// feature `etcd`). A check that fails, or takes longer than `every`
    /// or 1 s (whichever is more), turns health `NOT_SERVING` and the
    /// service [not serving](Service::set_serving): open watch streams end
    /// with `UNAVAILABLE` and calls are refused, so that clients given
    /// several servers move to another; the next check that succeeds turns
    /// both back.
    pub fn health_probe<F, Fut>(mut self, every: Duration, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.probe = Some(HealthProbe {
            every: every.max(Duration::from_millis(10)),
            check: std::sync::Arc::new(move || Box::pin(check()) as crate::transport::BoxFuture<bool>),
        });
        self
    }

    /// The service behind this server.
    pub fn service(&self) -> &Service<S> {
        &self.service
    }

    /// See [`Service::heartbeat_interval`].
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.service = self.service.heartbeat_interval(d);
        self
    }

    /// See [`Service::heartbeat_timeout`].
    pub fn heartbeat_timeout(mut self, d: Duration) -> Self {
        self.service = self.service.heartbeat_timeout(d);
        self
    }

    /// Most HTTP/2 streams (calls and the watch stream) per connection.
    pub fn max_concurrent_streams(mut self, n: u32) -> Self {
        self.max_concurrent_streams = n;
        self
    }

    /// Largest request message accepted, in bytes (RESOURCE_EXHAUSTED past
    /// it). By default, room for a value at its limit
    /// ([`max_value_bytes`](Self::max_value_bytes)), metadata at its limit
    /// and 64 KiB more: a value the service accepts always fits a request.
    pub fn max_message_bytes(mut self, n: usize) -> Self {
        self.max_message_bytes = Some(n);
        self
    }

    /// The largest request message accepted, in bytes.
    fn message_limit(&self) -> usize {
        self.max_message_bytes.unwrap_or_else(|| {
            let limits = self.service.limits();
            limits
                .max_value_bytes
                .saturating_add(limits.max_metadata_bytes)
                .saturating_add(64 << 10)
        })
    }

    /// See [`Service::max_value_bytes`].
    pub fn max_value_bytes(mut self, n: usize) -> Self {
        self.service = self.service.max_value_bytes(n);
        self
    }

    /// See [`Service::max_metadata_bytes`].
    pub fn max_metadata_bytes(mut self, n: usize) -> Self {
        self.service = self.service.max_metadata_bytes(n);
        self
    }

    /// See [`Service::max_message_value_bytes`]: the byte budget of one
    /// watch message.
    pub fn max_watch_message_bytes(mut self, n: usize) -> Self {
        self.service = self.service.max_message_value_bytes(n);
        self
    }

    /// See [`Service::max_batch_items`].
    pub fn max_batch_items(mut self, n: usize) -> Self {
        self.service = self.service.max_batch_items(n);
        self
    }

    /// See [`Service::max_watches`].
    pub fn max_watches(mut self, n: usize) -> Self {
        self.service = self.service.max_watches(n);
        self
    }

    /// Most watches open on one connection (its watch stream); see
    /// [`Service::max_watches_per_stream`].
    pub fn max_watches_per_connection(mut self, n: usize) -> Self {
        self.service = self.service.max_watches_per_stream(n);
        self
    }

    /// Most connections open at once (default 10 000). Past it a connection
    /// is accepted, every call on it answers RESOURCE_EXHAUSTED, and it is
    /// closed within a second.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.conn.max_connections = n;
        self
    }

    /// How long a new connection may take to send its first byte (default
    /// 10 s; at least 1 ms) before it is closed.
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.conn.handshake_timeout = d.clamp(Duration::from_millis(1), crate::transport::MAX_DURATION);
        self
    }

    /// How long a connection with no open watch stream may go without
    /// starting a call (default 60 s; at least 1 ms) before it is closed.
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.conn.idle_timeout = d.clamp(Duration::from_millis(1), crate::transport::MAX_DURATION);
        self
    }

    /// Serves over TLS (rustls) with this configuration (its identity: the
    /// server's certificate chain and key).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: tonic::transport::ServerTlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// The tonic service, for adding to your own `tonic::transport::Server`
    /// (the connection limits and the health and reflection services are
    /// then yours to add; see [`serve`](Self::serve)).
    pub fn into_server(self) -> InterceptedService<VarWatchServer<GrpcService<S>>, Gate> {
        let max = self.message_limit();
        let gate = Gate(self.token.clone());
        let server = VarWatchServer::new(self)
            .max_decoding_message_size(max)
            .max_encoding_message_size(usize::MAX);
        InterceptedService::new(server, gate)
    }

    /// Requires `authorization: Bearer <token>` on every call (the scheme's
    /// name in any case; the token compared in constant time;
    /// `UNAUTHENTICATED` otherwise).
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into().into());
        self
    }

    /// Ends every open watch stream (with `UNAVAILABLE`, so that clients
    /// reconnect elsewhere or later). `serve` does this when its shutdown
    /// fires; call it yourself when serving through [`into_server`](Self::into_server).
    pub fn close_watches(&self) {
        self.service.close_watches();
    }

    /// Serves on `listener` until `shutdown` completes: the `VarWatch`
    /// service, health (`SERVING` until shutdown) and reflection, with the
    /// connection limits and timeouts. On shutdown it reports `NOT_SERVING`,
    /// ends open watches and waits for connections to close.
    ///
    /// Health and reflection answer without the bearer token and on a
    /// connection over the limit (until it is closed), as load balancers and
    /// tools expect: they reveal the service's shape and state, no data.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<VarWatchServer<GrpcService<S>>>().await;
        let service = self.service.clone();
        // The probe's task ends with `serve` (the guard aborts it).
        let _probe = self.probe.clone().map(|probe| {
            AbortOnDrop(tokio::spawn(run_probe(
                probe,
                health.clone(),
                self.service.clone(),
            )))
        });
        let shutdown = async move {
            shutdown.await;
            drop(_probe);
            health.set_not_serving::<VarWatchServer<GrpcService<S>>>().await;
            service.close_watches();
        };
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .expect("the descriptor set built with the crate is valid");
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(super::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .expect("the descriptor set built with the crate is valid");
        let incoming = Incoming::new(listener, self.conn.clone());
        #[allow(unused_mut)]
        let mut builder = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .max_concurrent_streams(Some(self.max_concurrent_streams));
        #[cfg(feature = "tls")]
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls)?;
        }
        builder
            .layer(RemapLayer)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(self.into_server())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `probe` for ever, turning health and `service` to what it finds
/// (logged when it changes).
async fn run_probe<S: AsyncVarStore + Clone + Send + Sync + 'static>(
    probe: HealthProbe,
    health: tonic_health::server::HealthReporter,
    service: Service<S>,
) {
    let limit = probe.every.max(Duration::from_secs(1));
    let mut serving = true;
    loop {
        tokio::time::sleep(probe.every).await;
        let ok = tokio::time::timeout(limit, (probe.check)())
            .await
            .unwrap_or(false);
        if ok == serving {
            continue;
        }
        serving = ok;
        service.set_serving(ok);
        if ok {
            crate::trace::info!("the store answers again: serving");
            health.set_serving::<VarWatchServer<GrpcService<S>>>().await;
        } else {
            crate::trace::warning!("the store does not answer: not serving (watches closed, calls refused)");
            health.set_not_serving::<VarWatchServer<GrpcService<S>>>().await;
        }
    }
}

/// Wraps every service of the server (varwatch's, health, reflection):
/// counts each call as activity of its connection (so that a connection
/// that only health-checks is not idle), and answers RESOURCE_EXHAUSTED
/// where tonic answers OUT_OF_RANGE (a request larger than the server
/// accepts), as the protocol promises.
#[derive(Clone, Copy, Debug)]
struct RemapLayer;

impl<S> tower_layer::Layer<S> for RemapLayer {
    type Service = Remap<S>;
    fn layer(&self, inner: S) -> Remap<S> {
        Remap(inner)
    }
}

#[derive(Clone, Debug)]
struct Remap<S>(S);

impl<S, B, R> tower_service::Service<http::Request<B>> for Remap<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if let Some(conn) = super::auth::conn_in(req.extensions()) {
            conn.state.call();
        }
        let fut = self.0.call(req);
        Box::pin(async move {
            let mut response = fut.await?;
            let headers = response.headers_mut();
            if headers.get("grpc-status").is_some_and(|v| v == "11") {
                headers.insert("grpc-status", http::HeaderValue::from_static("8"));
            }
            Ok(response)
        })
    }
}

fn ok<T>(t: T) -> Result<Response_<T>, Status> {
    Ok(Response_::new(t))
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

fn wrong_answer(r: Response) -> Status {
    Status::internal(format!("the service gave an unexpected answer: {r:?}"))
}

/// Reads the one kind of answer a request has.
macro_rules! expect {
    ($r:expr, $variant:ident($x:pat) => $out:expr) => {
        match $r {
            Response::$variant($x) => ok($out),
            other => Err(wrong_answer(other)),
        }
    };
}

impl<S: AsyncVarStore + Clone + Send + Sync + 'static> GrpcService<S> {
    /// Decodes nothing, calls the service, maps its error to a status.
    /// (Values are decoded whole, bounded by the request message's limit;
    /// their own limit is the service's, checked with the variable's name so
    /// that the error is the same on every transport.)
    async fn call(&self, request: Request) -> Result<Response, Status> {
        self.service.call(request).await.map_err(status)
    }
}

/// Why the client's side of a watch stream broke, if it did with an error
/// (a message too large, say): the stream's end reports it.
type InboundError = std::sync::Arc<std::sync::Mutex<Option<Status>>>;

/// The client's requests on the watch stream. Ends when the client closes
/// its side or the connection breaks; requests of unknown kinds are skipped.
struct Inbound(Streaming<proto::WatchRequest>, InboundError);

impl Stream for Inbound {
    type Item = ClientMessage;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientMessage>> {
        loop {
            match Pin::new(&mut self.0).poll_next(cx) {
                Poll::Ready(Some(Ok(m))) => match request_from(m) {
                    Some(m) => return Poll::Ready(Some(m)),
                    None => continue,
                },
                Poll::Ready(Some(Err(status))) => {
                    // A message over the size limit is RESOURCE_EXHAUSTED
                    // (tonic says OUT_OF_RANGE).
                    let status = if status.code() == tonic::Code::OutOfRange {
                        Status::resource_exhausted(status.message().to_string())
                    } else {
                        status
                    };
                    *self.1.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
                    return Poll::Ready(None);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The server's side of a connection's watch stream, as handed to tonic. It
/// keeps its connection from being closed as idle while it lives.
pub struct ResponseStream {
    inner: ServerStream,
    inbound_error: InboundError,
    _open: Option<StreamGuard>,
}

impl std::fmt::Debug for ResponseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseStream")
    }
}

impl Stream for ResponseStream {
    type Item = Result<proto::WatchResponse, Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                let error = self
                    .inbound_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                Poll::Ready(error.map(Err))
            }
            other => other.map(|m| m.map(|m| m.map(|m| response_to(&m)).map_err(status))),
        }
    }
}

#[tonic::async_trait]
impl<S: AsyncVarStore + Clone + Send + Sync + 'static> VarWatch for GrpcService<S> {
    type WatchStream = ResponseStream;

    async fn watch(
        &self,
        req: Request_<Streaming<proto::WatchRequest>>,
    ) -> Result<Response_<ResponseStream>, Status> {
        let conn = conn_of(&req).map(|c| c.state.id);
        let open = conn_of(&req).map(|c| c.state.stream());
        let inbound_error = InboundError::default();
        let inbound = Inbound(req.into_inner(), inbound_error.clone());
        let inner = self.service.watch_stream_on(conn, inbound).map_err(status)?;
        Ok(Response_::new(ResponseStream {
            inner,
            inbound_error,
            _open: open,
        }))
    }

    async fn create_session(
        &self,
        req: Request_<proto::CreateSessionRequest>,
    ) -> Result<Response_<proto::SessionInfo>, Status> {
        let (session, options) = session_options(req.into_inner());
        expect!(self.call(Request::CreateSession { session, options }).await?, Session(s) => session_to(&s))
    }

    async fn get_or_create_session(
        &self,
        req: Request_<proto::CreateSessionRequest>,
    ) -> Result<Response_<proto::SessionInfo>, Status> {
        let (session, options) = session_options(req.into_inner());
        expect!(self.call(Request::GetOrCreateSession { session, options }).await?, Session(s) => session_to(&s))
    }

    async fn get_session(
        &self,
        req: Request_<proto::SessionRequest>,
    ) -> Result<Response_<proto::SessionInfo>, Status> {
        let session = req.into_inner().session;
        expect!(self.call(Request::GetSession { session }).await?, Session(s) => session_to(&s))
    }

    async fn delete_session(
        &self,
        req: Request_<proto::SessionRequest>,
    ) -> Result<Response_<proto::Empty>, Status> {
        let session = req.into_inner().session;
        match self.call(Request::DeleteSession { session }).await? {
            Response::Done => ok(proto::Empty {}),
            other => Err(wrong_answer(other)),
        }
    }

    async fn list_sessions(
        &self,
        _req: Request_<proto::Empty>,
    ) -> Result<Response_<proto::ListSessionsResponse>, Status> {
        expect!(self.call(Request::ListSessions).await?, Sessions(sessions) => proto::ListSessionsResponse { sessions })
    }

    async fn register_variable(
        &self,
        req: Request_<proto::RegisterVariableRequest>,
    ) -> Result<Response_<proto::RegisterVariableResponse>, Status> {
        let r = req.into_inner();
        let mut def = VarDef::new(r.name, var_type_from(r.r#type)?, value_from(r.value, usize::MAX)?);
        def.constraints = constraints_from(r.constraints)?;
        def.metadata = metadata_from(r.metadata);
        let session = r.session;
        expect!(self.call(Request::Register { session, def }).await?, Registered(id) => proto::RegisterVariableResponse { id })
    }

    async fn get_variable(
        &self,
        req: Request_<proto::VariableRequest>,
    ) -> Result<Response_<proto::Variable>, Status> {
        let r = req.into_inner();
        let request = Request::Get {
            session: r.session,
            variable: r.variable,
        };
        expect!(self.call(request).await?, Variable(v) => variable_to(&v))
    }

    async fn get_variables(
        &self,
        req: Request_<proto::GetVariablesRequest>,
    ) -> Result<Response_<proto::GetVariablesResponse>, Status> {
        let r = req.into_inner();
        let request = Request::GetMany {
            session: r.session,
            variables: r.variables,
        };
        expect!(self.call(request).await?, Many(got) => proto::GetVariablesResponse {
            found: got
                .found
                .iter()
                .map(|(ident, v)| proto::FoundVariable {
                    identifier: ident.clone(),
                    variable: Some(variable_to(v)),
                })
                .collect(),
            missing: got.missing,
            revision: got.revision,
        })
    }

    async fn list_variables(
        &self,
        req: Request_<proto::ListVariablesRequest>,
    ) -> Result<Response_<proto::ListVariablesResponse>, Status> {
        let r = req.into_inner();
        let request = Request::ListVariables {
            session: r.session,
            pattern: (!r.pattern.is_empty()).then_some(r.pattern),
        };
        expect!(self.call(request).await?, Variables(vars) => proto::ListVariablesResponse {
            variables: vars.iter().map(variable_to).collect(),
            revision: vars.revision,
        })
    }

    async fn update_variable(
        &self,
        req: Request_<proto::UpdateVariableRequest>,
    ) -> Result<Response_<proto::UpdateVariableResponse>, Status> {
        let r = req.into_inner();
        let request = Request::Update {
            value: value_from(r.value, usize::MAX)?,
            options: update_options(r.expected_version, r.source, r.metadata),
            session: r.session,
            variable: r.variable,
        };
        expect!(self.call(request).await?, Version(version) => proto::UpdateVariableResponse { version })
    }

    async fn update_variables(
        &self,
        req: Request_<proto::UpdateVariablesRequest>,
    ) -> Result<Response_<proto::UpdateVariablesResponse>, Status> {
        let r = req.into_inner();
        // The service's own check, before decoding a batch it would refuse.
        self.service
            .check_items("items in one batch", r.items.len())
            .map_err(status)?;
        // Decode every item first: a malformed one rejects the request and
        // changes nothing, atomic or not.
        let mut items = Vec::with_capacity(r.items.len());
        for (i, item) in r.items.into_iter().enumerate() {
            let value = value_from(item.value, usize::MAX).map_err(|s| {
                Status::new(
                    s.code(),
                    format!("item {i} (`{}`): {}", item.variable, s.message()),
                )
            })?;
            let mut u = BatchUpdate::new(item.variable, value);
            u.expected_version = item.expected_version;
            items.push(u);
        }
        let request = Request::UpdateMany {
            session: r.session,
            items,
            options: update_options(None, r.source, r.metadata),
            atomic: r.atomic,
        };
        expect!(self.call(request).await?, Items(results) => proto::UpdateVariablesResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(v) => proto::ItemResult {
                        result: Some(item_result::Result::Version(v)),
                        error_code: String::new(),
                        error_detail: None,
                    },
                    Err(e) => proto::ItemResult {
                        error_code: code_name(e.code()).to_string(),
                        error_detail: super::errors::detail(&e),
                        result: Some(item_result::Result::Error(e.to_string())),
                    },
                })
                .collect(),
        })
    }

    async fn delete_variable(
        &self,
        req: Request_<proto::VariableRequest>,
    ) -> Result<Response_<proto::Empty>, Status> {
        let r = req.into_inner();
        let request = Request::DeleteVariable {
            session: r.session,
            variable: r.variable,
        };
        match self.call(request).await? {
            Response::Done => ok(proto::Empty {}),
            other => Err(wrong_answer(other)),
        }
    }

    async fn import_variables(
        &self,
        req: Request_<proto::ImportVariablesRequest>,
    ) -> Result<Response_<proto::ImportVariablesResponse>, Status> {
        let r = req.into_inner();
        let defs = r
            .variables
            .into_iter()
            .map(|d| {
                let mut def = VarDef::new(d.name, var_type_from(d.r#type)?, value_from(d.value, usize::MAX)?);
                def.constraints = constraints_from(d.constraints)?;
                def.metadata = metadata_from(d.metadata);
                Ok(def)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let request = Request::Import {
            session: r.session,
            defs,
        };
        expect!(self.call(request).await?, Imported(ids) => proto::ImportVariablesResponse { ids })
    }
}
