//! `varwatch-server`: a varwatch store served over gRPC.
//!
//! ```text
//! cargo run --release --features server --bin varwatch-server -- --listen 127.0.0.1:50551
//! ```
//!
//! Every setting is a flag or an environment variable (`--help` lists them
//! all): the address, a bearer-token file, TLS certificate and key files,
//! the limits (connections, watches in all and per connection, message and
//! value sizes, batch items) and the timings (heartbeats, idle and handshake
//! timeouts). It logs through `tracing` (`--log`, or `VARWATCH_LOG`:
//! `info` by default, `debug` for every connection and watch), answers gRPC
//! health checks and server reflection, and shuts down gracefully on SIGINT
//! or SIGTERM: health turns `NOT_SERVING`, open watches end with
//! `UNAVAILABLE` (clients reconnect elsewhere or later), connections drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tracing::info;
use varwatch::transport::grpc::{GrpcService, Identity, ServerTlsConfig};
use varwatch::{SessionOptions, SessionStore};

/// Serves a varwatch store over gRPC.
#[derive(Parser, Debug)]
#[command(name = "varwatch-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "VARWATCH_LISTEN", default_value = "127.0.0.1:50551")]
    listen: SocketAddr,
    /// A file holding the bearer token every call must carry (trimmed).
    #[arg(long, env = "VARWATCH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificate chain: serve over TLS (with --tls-key).
    #[arg(long, env = "VARWATCH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "VARWATCH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Sessions to create at start (repeat the flag, or separate with commas).
    #[arg(long, env = "VARWATCH_SESSIONS", value_delimiter = ',')]
    session: Vec<String>,
    /// Most connections open at once.
    #[arg(long, env = "VARWATCH_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most watches open at once, over every connection.
    #[arg(long, env = "VARWATCH_MAX_WATCHES", default_value_t = 100_000)]
    max_watches: usize,
    /// Most watches open on one connection.
    #[arg(long, env = "VARWATCH_MAX_WATCHES_PER_CONNECTION", default_value_t = 100_000)]
    max_watches_per_connection: usize,
    /// Largest request message, in bytes.
    #[arg(long, env = "VARWATCH_MAX_MESSAGE_BYTES", default_value_t = 4 << 20)]
    max_message_bytes: usize,
    /// Largest value, in bytes.
    #[arg(long, env = "VARWATCH_MAX_VALUE_BYTES", default_value_t = 4 << 20)]
    max_value_bytes: usize,
    /// Most bytes of metadata and source of one session, variable or change.
    #[arg(long, env = "VARWATCH_MAX_METADATA_BYTES", default_value_t = 64 << 10)]
    max_metadata_bytes: usize,
    /// Byte budget of one watch message (a single larger event goes alone).
    #[arg(long, env = "VARWATCH_MAX_WATCH_MESSAGE_BYTES", default_value_t = 4 << 20)]
    max_watch_message_bytes: usize,
    /// Most items in one batch, multi-get or watch.
    #[arg(long, env = "VARWATCH_MAX_BATCH_ITEMS", default_value_t = 10_000)]
    max_batch_items: usize,
    /// How often a watch stream hears from the server (e.g. 5s, 500ms).
    #[arg(long, env = "VARWATCH_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = duration)]
    heartbeat_interval: Duration,
    /// Silence after which a client's watch stream is closed.
    #[arg(long, env = "VARWATCH_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = duration)]
    heartbeat_timeout: Duration,
    /// Time a connection without watches may go without a call.
    #[arg(long, env = "VARWATCH_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    idle_timeout: Duration,
    /// Time a new connection has to send its first byte.
    #[arg(long, env = "VARWATCH_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration)]
    handshake_timeout: Duration,
    /// Log filter (tracing's `EnvFilter` syntax: `info`, `debug`, `varwatch=debug`).
    #[arg(long, env = "VARWATCH_LOG", default_value = "info")]
    log: String,
}

/// A duration such as `250ms`, `5s`, `2m` or `1h` (a bare number is seconds).
fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 500ms, 5s, 2m)"))?;
    let d = match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => return Err(format!("unknown unit `{other}` (use ms, s, m or h)")),
    };
    Ok(d)
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&args.log)?)
        // Colours for a person at a terminal, plain lines for log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();

    let store = SessionStore::new();
    for id in &args.session {
        store.get_or_create_session(id, SessionOptions::new())?;
    }
    let mut service = GrpcService::new(store)
        .max_connections(args.max_connections)
        .max_watches(args.max_watches)
        .max_watches_per_connection(args.max_watches_per_connection)
        .max_message_bytes(args.max_message_bytes)
        .max_value_bytes(args.max_value_bytes)
        .max_metadata_bytes(args.max_metadata_bytes)
        .max_watch_message_bytes(args.max_watch_message_bytes)
        .max_batch_items(args.max_batch_items)
        .heartbeat_interval(args.heartbeat_interval)
        .heartbeat_timeout(args.heartbeat_timeout)
        .idle_timeout(args.idle_timeout)
        .handshake_timeout(args.handshake_timeout);
    if let Some(path) = &args.token_file {
        let token = String::from_utf8(read(path, "token file")?)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the token file {} is empty", path.display()).into());
        }
        service = service.bearer_token(token);
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let identity = Identity::from_pem(read(cert, "certificate")?, read(key, "key")?);
            service = service.tls(ServerTlsConfig::new().identity(identity));
            true
        }
        _ => false,
    };

    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    info!(
        addr = %listener.local_addr()?,
        tls,
        token = args.token_file.is_some(),
        "varwatch-server listening"
    );
    service.serve(listener, shutdown()).await?;
    info!("varwatch-server stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutting down: ending watches, draining connections");
}
