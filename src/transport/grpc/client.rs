//! [`GrpcTransport`]: the client side of the gRPC transport.
//!
//! One transport holds one HTTP/2 connection (a tonic `Channel`, made on
//! first use and re-made whenever it breaks); every call and every watch is
//! a stream on it, so a thousand watches are a thousand streams on one
//! connection, not a thousand connections.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_core::Stream;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::auth::BearerToken;
use super::convert::{
    EventDecoder, code_from_name, constraints_to, error_from, request_to, response_from, session_from,
    value_to, var_type_to, variable_from,
};
use super::proto::var_watch_client::VarWatchClient;
use super::proto::{self, item_result};
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
/// (for example to count calls) or to share one connection between clients.
#[derive(Clone, Debug)]
pub struct GrpcTransport {
    inner: Arc<Connection>,
}

#[derive(Debug)]
struct Connection {
    addr: String,
    endpoint: Endpoint,
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// Made on first use, inside the client's runtime (the channel's worker
    /// task lives there).
    client: OnceLock<Client>,
}

impl GrpcTransport {
    /// A transport to the server at `addr` (`host:port`), with the connect
    /// timeout, keepalive (the heartbeat settings) and bearer token of
    /// `config`. Nothing is dialled until the first call.
    pub fn new(addr: &str, config: &RemoteConfig) -> Result<GrpcTransport> {
        let config = &config.clone().normalized();
        let transport = |reason: String, source: Option<ErrorSource>| Error::Transport {
            addr: addr.to_string(),
            reason,
            source,
        };
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| transport(e.to_string(), Some(ErrorSource::new(e))))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(config.heartbeat_interval)
            .keep_alive_timeout(config.heartbeat_timeout)
            .keep_alive_while_idle(true);
        let header = match &config.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| transport("the token is not valid in an HTTP header".into(), None))?,
            ),
            None => None,
        };
        Ok(GrpcTransport {
            inner: Arc::new(Connection {
                addr: addr.to_string(),
                endpoint,
                header,
                client: OnceLock::new(),
            }),
        })
    }

    /// The address dialled.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The generated client. Must be called inside a tokio runtime.
    fn client(&self) -> Client {
        self.inner
            .client
            .get_or_init(|| {
                VarWatchClient::with_interceptor(
                    self.inner.endpoint.connect_lazy(),
                    BearerToken(self.inner.header.clone()),
                )
                .max_decoding_message_size(usize::MAX)
            })
            .clone()
    }
}

impl RemoteStore {
    /// A client of the varwatch gRPC server at `addr` (`host:port`): a
    /// [`RemoteStore`] over a [`GrpcTransport`]. The connection is made on
    /// first use and re-made whenever it breaks.
    pub fn connect(addr: &str, config: RemoteConfig) -> Result<RemoteStore> {
        let transport = GrpcTransport::new(addr, &config)?;
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
            Response::Variables(vars.map_err(answer_status)?)
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
    })
}

/// A malformed answer, reported like a server error.
fn answer_status(e: Error) -> tonic::Status {
    tonic::Status::internal(e.to_string())
}

fn item_from(r: proto::ItemResult) -> Result<u64> {
    match r.result {
        Some(item_result::Result::Version(v)) => Ok(v),
        Some(item_result::Result::Error(message)) => Err(Error::Remote {
            code: code_from_name(&r.error_code),
            message,
        }),
        None => Err(Error::Remote {
            code: ErrorCode::Other,
            message: "the server gave no result for this item".into(),
        }),
    }
}

impl Transport for GrpcTransport {
    fn call(&self, request: Request) -> BoxFuture<Result<Response>> {
        let this = self.clone();
        Box::pin(async move { call(this.client(), request).await.map_err(error_from) })
    }

    fn watch_stream(&self, outbound: ClientMessages) -> BoxFuture<Result<ServerMessages>> {
        let this = self.clone();
        Box::pin(async move {
            let inbound = this
                .client()
                .watch(Requests(outbound))
                .await
                .map_err(error_from)?
                .into_inner();
            Ok(Box::pin(Responses {
                inner: inbound,
                decoder: EventDecoder::default(),
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
}

impl Stream for Responses {
    type Item = Result<ServerMessage>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|m| m.map(|m| Ok(response_from(m.map_err(error_from)?, &mut this.decoder))))
    }
}
