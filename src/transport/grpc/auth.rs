//! The server's gate on every call, and the client's token.
//!
//! The server's [`Gate`] runs before each call: it records the call on its
//! connection (see `conn.rs`), refuses calls on a connection accepted past
//! the server's limit (`RESOURCE_EXHAUSTED`), and, when the server has a
//! token, checks `authorization: Bearer <token>` (the scheme's name in any
//! case, RFC 6750; the token compared in constant time; `UNAUTHENTICATED`
//! when it is missing or wrong).

use std::sync::Arc;

use tonic::codegen::http;
use tonic::metadata::MetadataValue;

use super::conn::ConnInfo;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Compares in time that depends only on the lengths, not on where the
/// first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// The server's gate on every call (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Gate(pub(crate) Option<Arc<str>>);

/// The connection a request came on, with or without TLS.
pub(crate) fn conn_of<T>(req: &Request<T>) -> Option<&ConnInfo> {
    conn_in(req.extensions())
}

/// The connection a request came in on, from its extensions (tonic's or
/// http's request).
pub(crate) fn conn_in(ext: &http::Extensions) -> Option<&ConnInfo> {
    #[cfg(feature = "tls")]
    if let Some(tls) = ext.get::<tonic::transport::server::TlsConnectInfo<ConnInfo>>() {
        return Some(tls.get_ref());
    }
    ext.get::<ConnInfo>()
}

/// The token of an `authorization` header value `Bearer <token>`, the
/// scheme's name in any case.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim_start())
}

impl Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if conn_of(&req).is_some_and(|conn| conn.state.over_limit) {
            return Err(Status::resource_exhausted(
                "the server has its maximum of connections; try again later",
            ));
        }
        let Some(token) = &self.0 else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(req),
            Some(_) => {
                crate::trace::debug!(conn = ?conn_of(&req).map(|c| c.state.id), remote = ?conn_of(&req).and_then(|c| c.remote_addr), "wrong bearer token");
                Err(Status::unauthenticated("wrong bearer token"))
            }
            None => {
                crate::trace::debug!(conn = ?conn_of(&req).map(|c| c.state.id), remote = ?conn_of(&req).and_then(|c| c.remote_addr), "no bearer token");
                Err(Status::unauthenticated(
                    "this server requires `authorization: Bearer <token>`",
                ))
            }
        }
    }
}

/// The client's side: adds the header when a token is configured.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(pub(crate) Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        let mut check = Gate(Some("s3cret".into()));
        let mut req = Request::new(());
        assert_eq!(
            check.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        req.metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(check.call(req).is_ok());
        let mut bad = Request::new(());
        bad.metadata_mut()
            .insert("authorization", "Bearer s3creT".parse().unwrap());
        assert_eq!(check.call(bad).unwrap_err().message(), "wrong bearer token");
        assert!(Gate(None).call(Request::new(())).is_ok());
        // The scheme's name in any case (RFC 6750).
        for header in ["bearer s3cret", "BEARER s3cret", "BeArEr  s3cret"] {
            let mut req = Request::new(());
            req.metadata_mut()
                .insert("authorization", header.parse().unwrap());
            assert!(check.call(req).is_ok(), "{header}");
        }
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Basic s3cret".parse().unwrap());
        assert!(check.call(req).is_err());
    }
}
