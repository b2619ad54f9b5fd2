//! [`GrpcTransport`]: the client side of the gRPC transport.
//!
//! One transport holds one HTTP/2 connection (a tonic `Channel`, made on
//! first use and re-made whenever it breaks); every call and every watch is
//! a stream on it, so a thousand watches are a thousand streams on one
//! connection, not a thousand connections.
//!
//! Given several servers (replicas over one etcd), it uses one at a time
//! and moves to the next when the one in use fails: the connection breaks
//! or cannot be made, or the server answers `UNAVAILABLE` (shutting down,
//! or not serving: its store unreachable). The rule is [`moves_on`]; what
//! is retried at once on the next server is what is safe to send twice
//! ([`retry_elsewhere`]). The watch stream, broken, is re-opened by the
//! client on the next server, where every watch resumes from the versions
//! it holds — the sessions, versions and incarnations are etcd's, the same
//! on every replica.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::Stream;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::auth::BearerToken;
use super::convert::{
    EventDecoder, code_from_name, constraints_to, request_to, response_from, session_from, value_to,
    var_type_to, variable_from,
};
use super::proto::var_watch_client::VarWatchClient;
use super::proto::{self, item_result};
use crate::transport::service::refused;
use crate::transport::{
    BoxFuture, ClientMessages, RemoteConfig, RemoteStore, Request, Response, ServerMessage, ServerMessages,
    Transport,
};
use crate::{Error, ErrorCode, ErrorSource, GetMany, Result, SessionOptions, UpdateOptions};

/// The generated client, with the bearer-token header added to each call.
type Client = VarWatchClient<InterceptedService<Channel, BearerToken>>;

/// A [`Transport`] to a varwatch gRPC server ([`GrpcService`](super::GrpcService)).
///
/// Usually made by [`RemoteStore::connect`]; build it yourself to wrap it
/// (for example to count calls), to share one connection between clients,
/// or from a `tonic` endpoint or channel you configured (TLS, proxies,
/// load balancing).
#[derive(Clone, Debug)]
pub struct GrpcTransport {
    inner: Arc<Connection>,
}

#[derive(Debug)]
enum Dial {
    /// Connected lazily, inside the client's runtime (the channel's worker
    /// task lives there).
    Endpoint(Box<Endpoint>),
    /// A channel the caller made.
    Channel(Channel),
}

#[derive(Debug)]
struct Connection {
    /// The servers, in the order given; at least one.
    targets: Vec<Target>,
    /// The index of the server in use: calls and the watch stream go there
    /// until it fails ([`moves_on`]), then to the next.
    current: AtomicUsize,
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

/// One server.
#[derive(Debug)]
struct Target {
    addr: String,
    dial: Dial,
    /// Made on first use.
    client: OnceLock<Client>,
}

impl Connection {
    fn new(targets: Vec<Target>, header: Option<MetadataValue<tonic::metadata::Ascii>>) -> Connection {
        Connection {
            targets,
            current: AtomicUsize::new(0),
            header,
        }
    }

    /// After server `i` failed: the next one is in use (unless another
    /// caller moved already).
    fn move_off(&self, i: usize) {
        let next = (i + 1) % self.targets.len();
        let _ = self
            .current
            .compare_exchange(i, next, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Whether `e`, from a server in use, means moving to the next one: the
/// way to it failed (no connection, a broken one), or the server refused
/// to serve at all (not serving, shutting down: [`refused`]). Any other
/// answer — `UNAVAILABLE` from its store included (etcd contention, etcd
/// unreachable before its probe notices) — is the store's own and would be
/// the same on every replica.
fn moves_on(e: &Error) -> bool {
    matches!(e, Error::Transport { .. }) || refused(e)
}

/// Whether a request that failed with `e` (where [`moves_on`] holds) may be
/// sent at once to the next server: a read always; a write only if it
/// certainly was not applied — it never left, or the server refused it
/// before its store saw it ([`refused`]).
/// Otherwise its outcome is unknown, and the caller is told so.
fn retry_elsewhere(request: &Request, e: &Error) -> bool {
    request.as_write().is_none() || crate::error::never_sent(e) || refused(e)
}

/// The `authorization` header of `config`'s token.
fn header(addr: &str, config: &RemoteConfig) -> Result<Option<MetadataValue<tonic::metadata::Ascii>>> {
    match &config.token {
        Some(t) => Ok(Some(format!("Bearer {t}").parse().map_err(|_| {
            Error::Transport {
                addr: addr.to_string(),
                reason: "the token is not valid in an HTTP header".into(),
                source: None,
            }
        })?)),
        None => Ok(None),
    }
}

/// The error of an address (`host:port`) no endpoint can be made of.
fn bad_address(addr: &str, e: tonic::transport::Error) -> Error {
    Error::Transport {
        addr: crate::error::q(addr).to_string(),
        reason: e.to_string(),
        source: Some(ErrorSource::new(e)),
    }
}

/// `config`'s connect timeout and keepalive (its heartbeat settings) on
/// `endpoint`.
fn configure(endpoint: Endpoint, config: &RemoteConfig) -> Endpoint {
    let config = config.clone().normalized();
    endpoint
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(config.heartbeat_interval)
        .keep_alive_timeout(config.heartbeat_timeout)
        .keep_alive_while_idle(true)
}

impl GrpcTransport {
    /// A transport to the server at `addr` (`host:port`), in plain text,
    /// with the connect timeout, keepalive (the heartbeat settings) and
    /// bearer token of `config`. Nothing is dialled until the first call.
    pub fn new(addr: &str, config: &RemoteConfig) -> Result<GrpcTransport> {
        GrpcTransport::new_any([addr], config)
    }

    /// A transport to the server at `addr` (`host:port`) over TLS, with
    /// `tls` (the server's CA, the domain name to check) and the settings
    /// of `config`.
    #[cfg(feature = "tls")]
    pub fn with_tls(
        addr: &str,
        tls: tonic::transport::ClientTlsConfig,
        config: &RemoteConfig,
    ) -> Result<GrpcTransport> {
        GrpcTransport::with_tls_any([addr], tls, config)
    }

    /// A transport through an endpoint you built (its TLS, timeouts and
    /// keepalive are yours), with `config`'s bearer token. Nothing is
    /// dialled until the first call.
    pub fn from_endpoint(endpoint: Endpoint, config: &RemoteConfig) -> Result<GrpcTransport> {
        GrpcTransport::from_endpoints([endpoint], config)
    }

    /// A transport to several servers serving the same sessions (replicas
    /// of `varwatch-server` over one etcd), in plain text: one is used at a
    /// time, the next when it fails (see the module docs). Nothing is
    /// dialled until the first call.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when `addrs` is empty or an address is not one.
    pub fn new_any<I, A>(addrs: I, config: &RemoteConfig) -> Result<GrpcTransport>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let endpoints = addrs
            .into_iter()
            .map(|addr| {
                let addr = addr.as_ref();
                Endpoint::from_shared(format!("http://{addr}"))
                    .map(|e| configure(e, config))
                    .map_err(|e| bad_address(addr, e))
            })
            .collect::<Result<Vec<_>>>()?;
        GrpcTransport::from_endpoints(endpoints, config)
    }

    /// [`new_any`](Self::new_any) over TLS, with `tls` for every server.
    #[cfg(feature = "tls")]
    pub fn with_tls_any<I, A>(
        addrs: I,
        tls: tonic::transport::ClientTlsConfig,
        config: &RemoteConfig,
    ) -> Result<GrpcTransport>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let endpoints = addrs
            .into_iter()
            .map(|addr| {
                let addr = addr.as_ref();
                Endpoint::from_shared(format!("https://{addr}"))
                    .and_then(|e| e.tls_config(tls.clone()))
                    .map(|e| configure(e, config))
                    .map_err(|e| bad_address(addr, e))
            })
            .collect::<Result<Vec<_>>>()?;
        GrpcTransport::from_endpoints(endpoints, config)
    }

    /// A transport through endpoints you built, one server each (used one
    /// at a time, see the module docs), with `config`'s bearer token.
    ///
    /// # Errors
    ///
    /// [`Error::Transport`] when `endpoints` is empty.
    pub fn from_endpoints(
        endpoints: impl IntoIterator<Item = Endpoint>,
        config: &RemoteConfig,
    ) -> Result<GrpcTransport> {
        let targets: Vec<Target> = endpoints
            .into_iter()
            .map(|endpoint| Target {
                addr: endpoint.uri().to_string(),
                dial: Dial::Endpoint(Box::new(endpoint)),
                client: OnceLock::new(),
            })
            .collect();
        let Some(first) = targets.first() else {
            return Err(Error::Transport {
                addr: String::new(),
                reason: "no server address was given".into(),
                source: None,
            });
        };
        let header = header(&first.addr, config)?;
        Ok(GrpcTransport {
            inner: Arc::new(Connection::new(targets, header)),
        })
    }

    /// A transport over a channel you made, with `config`'s bearer token.
    pub fn from_channel(channel: Channel, config: &RemoteConfig) -> Result<GrpcTransport> {
        let addr = "channel".to_string();
        let header = header(&addr, config)?;
        Ok(GrpcTransport {
            inner: Arc::new(Connection::new(
                vec![Target {
                    addr,
                    dial: Dial::Channel(channel),
                    client: OnceLock::new(),
                }],
                header,
            )),
        })
    }

    /// The address of the server in use.
    pub fn addr(&self) -> &str {
        &self.inner.targets[self.current()].addr
    }

    /// The index of the server in use.
    fn current(&self) -> usize {
        self.inner.current.load(Ordering::Acquire) % self.inner.targets.len()
    }

    /// The generated client of server `i`. Must be called inside a tokio
    /// runtime.
    fn client(&self, i: usize) -> Client {
        let target = &self.inner.targets[i];
        target
            .client
            .get_or_init(|| {
                let channel = match &target.dial {
                    Dial::Endpoint(e) => e.connect_lazy(),
                    Dial::Channel(c) => c.clone(),
                };
                VarWatchClient::with_interceptor(channel, BearerToken(self.inner.header.clone()))
                    .max_decoding_message_size(usize::MAX)
            })
            .clone()
    }
}

impl RemoteStore {
    /// A client of the varwatch gRPC server at `addr` (`host:port`), in
    /// plain text: a [`RemoteStore`] over a [`GrpcTransport`]. The
    /// connection is made on first use and re-made whenever it breaks.
    pub fn connect(addr: &str, config: RemoteConfig) -> Result<RemoteStore> {
        let transport = GrpcTransport::new(addr, &config)?;
        RemoteStore::new(transport, config)
    }

    /// A client of the server at `addr` over TLS (see
    /// [`GrpcTransport::with_tls`]).
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        addr: &str,
        tls: tonic::transport::ClientTlsConfig,
        config: RemoteConfig,
    ) -> Result<RemoteStore> {
        let transport = GrpcTransport::with_tls(addr, tls, &config)?;
        RemoteStore::new(transport, config)
    }

    /// A client through an endpoint you built (see
    /// [`GrpcTransport::from_endpoint`]).
    pub fn from_endpoint(endpoint: Endpoint, config: RemoteConfig) -> Result<RemoteStore> {
        let transport = GrpcTransport::from_endpoint(endpoint, &config)?;
        RemoteStore::new(transport, config)
    }

    /// A client of several servers serving the same sessions — replicas of
    /// `varwatch-server` over one etcd — in plain text: it uses one at a
    /// time and moves to the next when it dies, shuts down or reports that
    /// it is not serving; every open watch resumes there, without a gap
    /// (see [`GrpcTransport::new_any`]).
    ///
    /// ```no_run
    /// # fn main() -> varwatch::Result<()> {
    /// use varwatch::transport::{RemoteConfig, RemoteStore};
    /// let store = RemoteStore::connect_any(["10.0.0.1:50551", "10.0.0.2:50551"], RemoteConfig::new())?;
    /// # Ok(()) }
    /// ```
    pub fn connect_any<I, A>(addrs: I, config: RemoteConfig) -> Result<RemoteStore>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let transport = GrpcTransport::new_any(addrs, &config)?;
        RemoteStore::new(transport, config)
    }

    /// [`connect_any`](Self::connect_any) over TLS (see
    /// [`GrpcTransport::with_tls_any`]).
    #[cfg(feature = "tls")]
    pub fn connect_tls_any<I, A>(
        addrs: I,
        tls: tonic::transport::ClientTlsConfig,
        config: RemoteConfig,
    ) -> Result<RemoteStore>
    where
        I: IntoIterator<Item = A>,
        A: AsRef<str>,
    {
        let transport = GrpcTransport::with_tls_any(addrs, tls, &config)?;
        RemoteStore::new(transport, config)
    }
}

fn session_request(session: String, opts: SessionOptions) -> proto::CreateSessionRequest {
    proto::CreateSessionRequest {
        session,
        ttl_ms: opts.ttl.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        metadata: opts.metadata.into_iter().collect(),
    }
}

fn metadata(opts: &UpdateOptions) -> std::collections::HashMap<String, String> {
    opts.metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The answer to one call, as the store would have given it.
async fn call(mut c: Client, request: Request) -> std::result::Result<Response, tonic::Status> {
    Ok(match request {
        Request::CreateSession { session, options } => {
            let r = c.create_session(session_request(session, options)).await?;
            Response::Session(session_from(r.into_inner()))
        }
        Request::GetOrCreateSession { session, options } => {
            let r = c.get_or_create_session(session_request(session, options)).await?;
            Response::Session(session_from(r.into_inner()))
        }
        Request::GetSession { session } => {
            let r = c.get_session(proto::SessionRequest { session }).await?;
            Response::Session(session_from(r.into_inner()))
        }
        Request::DeleteSession { session } => {
            c.delete_session(proto::SessionRequest { session }).await?;
            Response::Done
        }
        Request::ListSessions => {
            Response::Sessions(c.list_sessions(proto::Empty {}).await?.into_inner().sessions)
        }
        Request::Register { session, def } => {
            let req = proto::RegisterVariableRequest {
                session,
                r#type: var_type_to(def.var_type) as i32,
                value: Some(value_to(&def.value)),
                constraints: Some(constraints_to(&def.constraints)),
                metadata: def.metadata.into_iter().collect(),
                name: def.name,
            };
            Response::Registered(c.register_variable(req).await?.into_inner().id)
        }
        Request::Get { session, variable } => {
            let v = c
                .get_variable(proto::VariableRequest { session, variable })
                .await?;
            Response::Variable(variable_from(v.into_inner()).map_err(answer_status)?)
        }
        Request::GetMany { session, variables } => {
            let r = c
                .get_variables(proto::GetVariablesRequest { session, variables })
                .await?
                .into_inner();
            let mut found = Vec::with_capacity(r.found.len());
            for f in r.found {
                let v = f
                    .variable
                    .ok_or_else(|| tonic::Status::internal("a found variable without its state"))?;
                found.push((f.identifier, variable_from(v).map_err(answer_status)?));
            }
            Response::Many(GetMany {
                found,
                missing: r.missing,
                revision: r.revision,
            })
        }
        Request::ListVariables { session, pattern } => {
            let req = proto::ListVariablesRequest {
                session,
                pattern: pattern.unwrap_or_default(),
            };
            let r = c.list_variables(req).await?.into_inner();
            let vars = r.variables.into_iter().map(variable_from).collect::<Result<_>>();
            Response::Variables(crate::VarList::new(vars.map_err(answer_status)?, r.revision))
        }
        Request::Update {
            session,
            variable,
            value,
            options,
        } => {
            let req = proto::UpdateVariableRequest {
                session,
                variable,
                value: Some(value_to(&value)),
                expected_version: options.expected_version,
                metadata: metadata(&options),
                source: options.source,
            };
            Response::Version(c.update_variable(req).await?.into_inner().version)
        }
        Request::UpdateMany {
            session,
            items,
            options,
            atomic,
        } => {
            let req = proto::UpdateVariablesRequest {
                session,
                items: items
                    .into_iter()
                    .map(|u| proto::BatchItem {
                        variable: u.ident,
                        value: Some(value_to(&u.value)),
                        expected_version: u.expected_version,
                    })
                    .collect(),
                atomic,
                metadata: metadata(&options),
                source: options.source,
            };
            let r = c.update_variables(req).await?.into_inner();
            Response::Items(r.results.into_iter().map(item_from).collect())
        }
        Request::DeleteVariable { session, variable } => {
            c.delete_variable(proto::VariableRequest { session, variable })
                .await?;
            Response::Done
        }
        Request::Import { session, defs } => {
            let variables = defs
                .into_iter()
                .map(|def| proto::VariableDefinition {
                    r#type: var_type_to(def.var_type) as i32,
                    value: Some(value_to(&def.value)),
                    constraints: Some(constraints_to(&def.constraints)),
                    metadata: def.metadata.into_iter().collect(),
                    name: def.name,
                })
                .collect();
            let req = proto::ImportVariablesRequest { session, variables };
            Response::Imported(c.import_variables(req).await?.into_inner().ids)
        }
    })
}

/// A malformed answer, reported like a server error.
fn answer_status(e: Error) -> tonic::Status {
    tonic::Status::internal(e.to_string())
}

fn item_from(r: proto::ItemResult) -> Result<u64> {
    match r.result {
        Some(item_result::Result::Version(v)) => Ok(v),
        Some(item_result::Result::Error(message)) => Err(r
            .error_detail
            .and_then(super::errors::error)
            .unwrap_or_else(|| Error::Remote {
                code: code_from_name(&r.error_code),
                message,
            })),
        None => Err(Error::Remote {
            code: ErrorCode::Other,
            message: "the server gave no result for this item".into(),
        }),
    }
}

impl Transport for GrpcTransport {
    fn call(&self, request: Request) -> BoxFuture<Result<Response>> {
        let this = self.clone();
        Box::pin(async move {
            let n = this.inner.targets.len();
            let mut tried = 0;
            loop {
                let i = this.current();
                let addr = &this.inner.targets[i].addr;
                let r = call(this.client(i), request.clone())
                    .await
                    .map_err(|s| super::errors::error_of_status_from(addr, s));
                match r {
                    Err(e) if n > 1 && moves_on(&e) => {
                        this.inner.move_off(i);
                        tried += 1;
                        if tried < n && retry_elsewhere(&request, &e) {
                            crate::trace::debug!(server = %addr, error = %e, "moving to the next server");
                            continue;
                        }
                        return Err(e);
                    }
                    r => return r,
                }
            }
        })
    }

    fn watch_stream(&self, outbound: ClientMessages) -> BoxFuture<Result<ServerMessages>> {
        let this = self.clone();
        Box::pin(async move {
            let i = this.current();
            let addr = this.inner.targets[i].addr.clone();
            let opened = this.client(i).watch(Requests(outbound)).await;
            let inbound = match opened {
                Ok(r) => r.into_inner(),
                Err(s) => {
                    // The client re-opens the stream (with its backoff):
                    // on the next server, if this one is out.
                    let e = super::errors::error_of_status_from(&addr, s);
                    if moves_on(&e) {
                        this.inner.move_off(i);
                    }
                    return Err(e);
                }
            };
            Ok(Box::pin(Responses {
                inner: inbound,
                decoder: EventDecoder::default(),
                addr,
                server: (this.inner.clone(), i),
            }) as ServerMessages)
        })
    }
}

/// The client's side of the watch stream on the wire.
struct Requests(ClientMessages);

impl Stream for Requests {
    type Item = proto::WatchRequest;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<proto::WatchRequest>> {
        Pin::new(&mut self.0).poll_next(cx).map(|m| m.map(request_to))
    }
}

/// The server's side of the watch stream, decoded.
struct Responses {
    inner: tonic::Streaming<proto::WatchResponse>,
    decoder: EventDecoder,
    /// The server's address, for errors.
    addr: String,
    /// The connection and the server's index: a stream that breaks moves
    /// the connection off the server.
    server: (Arc<Connection>, usize),
}

impl Stream for Responses {
    type Item = Result<ServerMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Pin::new(&mut this.inner).poll_next(cx).map(|m| {
            m.map(|m| {
                let m = m.map_err(|s| {
                    let e = super::errors::error_of_status_from(&this.addr, s);
                    if moves_on(&e) {
                        this.server.0.move_off(this.server.1);
                    }
                    e
                })?;
                Ok(response_from(m, &mut this.decoder))
            })
        })
    }
}
