//! `varwatch-server`: a varwatch store served over gRPC.
//!
//! ```text
//! cargo run --release --features server --bin varwatch-server -- --listen 127.0.0.1:50551
//! cargo run --release --features server,etcd --bin varwatch-server -- --etcd http://127.0.0.1:2379
//! ```
//!
//! The store is in memory by default (its state is lost when the server
//! stops: it says so at start), or on an etcd cluster with `--etcd` (the
//! binary built with feature `etcd`): several servers on one etcd serve the
//! same sessions.
//!
//! Every setting is a flag or an environment variable (`--help` lists them
//! all): the address, a bearer-token file, TLS certificate and key files,
//! the limits (connections, watches in all and per connection, message and
//! value sizes, batch items) and the timings (heartbeats, idle and handshake
//! timeouts). It logs through `tracing` (`--log`, or `VARWATCH_LOG`:
//! `info` by default; `debug` for each connection's open and close, with an
//! id that every line of its watches carries; other crates stay at `warn`
//! unless a full filter such as `debug,h2=debug` asks), answers gRPC
//! health checks and server reflection, and shuts down gracefully on SIGINT
//! or SIGTERM: health turns `NOT_SERVING`, open watches end with
//! `UNAVAILABLE` (clients reconnect elsewhere or later), connections drain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tracing::{info, warn};
use varwatch::transport::grpc::{GrpcService, Identity, ServerTlsConfig};
use varwatch::{AsyncVarStore, SessionOptions, SessionStore};

/// Serves a varwatch store over gRPC.
#[derive(Parser, Debug)]
#[command(name = "varwatch-server", version)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        help_heading = "Network",
        env = "VARWATCH_LISTEN",
        default_value = "127.0.0.1:50551"
    )]
    listen: SocketAddr,
    /// A file holding the bearer token every call must carry (trimmed).
    #[arg(long, help_heading = "Security", env = "VARWATCH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM certificate chain: serve over TLS (with --tls-key).
    #[arg(
        long,
        help_heading = "Security",
        env = "VARWATCH_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        help_heading = "Security",
        env = "VARWATCH_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
    /// Sessions to create at start (repeat the flag, or separate with commas);
    /// like any session created without a TTL, they get --default-ttl.
    #[arg(
        long,
        help_heading = "Network",
        env = "VARWATCH_SESSIONS",
        value_delimiter = ','
    )]
    session: Vec<String>,
    /// Most connections open at once.
    #[arg(
        long,
        help_heading = "Limits",
        env = "VARWATCH_MAX_CONNECTIONS",
        default_value_t = 10_000
    )]
    max_connections: usize,
    /// Most watches open at once, over every connection.
    #[arg(
        long,
        help_heading = "Limits",
        env = "VARWATCH_MAX_WATCHES",
        default_value_t = 100_000
    )]
    max_watches: usize,
    /// Most watches open on one connection.
    #[arg(
        long,
        help_heading = "Limits",
        env = "VARWATCH_MAX_WATCHES_PER_CONNECTION",
        default_value_t = 100_000
    )]
    max_watches_per_connection: usize,
    /// Largest request message, in bytes (default: room for a value and
    /// metadata at their limits, and 64 KiB more).
    #[arg(long, help_heading = "Limits", env = "VARWATCH_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Largest value, in bytes.
    #[arg(long, help_heading = "Limits", env = "VARWATCH_MAX_VALUE_BYTES", default_value_t = 4 << 20)]
    max_value_bytes: usize,
    /// Most bytes of metadata and source of one session, variable or change.
    #[arg(long, help_heading = "Limits", env = "VARWATCH_MAX_METADATA_BYTES", default_value_t = 64 << 10)]
    max_metadata_bytes: usize,
    /// Byte budget of one watch message (a single larger event goes alone).
    #[arg(long, help_heading = "Limits", env = "VARWATCH_MAX_WATCH_MESSAGE_BYTES", default_value_t = 4 << 20)]
    max_watch_message_bytes: usize,
    /// Most items in one batch, multi-get or watch.
    #[arg(
        long,
        help_heading = "Limits",
        env = "VARWATCH_MAX_BATCH_ITEMS",
        default_value_t = 10_000
    )]
    max_batch_items: usize,
    /// How often a watch stream hears from the server (e.g. 5s, 500ms).
    #[arg(long, help_heading = "Timing", env = "VARWATCH_HEARTBEAT_INTERVAL", default_value = "5s", value_parser = duration)]
    heartbeat_interval: Duration,
    /// Silence after which a client's watch stream is closed.
    #[arg(long, help_heading = "Timing", env = "VARWATCH_HEARTBEAT_TIMEOUT", default_value = "15s", value_parser = duration)]
    heartbeat_timeout: Duration,
    /// Time a connection without watches may go without a call.
    #[arg(long, help_heading = "Timing", env = "VARWATCH_IDLE_TIMEOUT", default_value = "60s", value_parser = duration)]
    idle_timeout: Duration,
    /// Time a new connection has to send its first byte.
    #[arg(long, help_heading = "Timing", env = "VARWATCH_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = duration)]
    handshake_timeout: Duration,
    /// Log level or filter. A bare level (`debug`, `trace`, `info`) is
    /// varwatch's own: `debug` logs each connection's open and close with its
    /// id, and every watch with the id of its connection, other crates
    /// staying at `warn`. Anything else is tracing's `EnvFilter` syntax, as
    /// given (`debug,h2=trace` for everything).
    #[arg(long, help_heading = "Logging", env = "VARWATCH_LOG", default_value = "info")]
    log: String,
    /// `text` (aligned, coloured at a terminal) or `json` (one object per
    /// line, for log collectors).
    #[arg(long, help_heading = "Logging", env = "VARWATCH_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Keep the sessions in this directory (created if missing): every
    /// accepted change is on disk before it is acknowledged or seen, and a
    /// restart — or a crash — gives back every session, variable, id,
    /// version and revision; open watches resume. Not with --etcd.
    #[arg(
        long,
        help_heading = "Storage",
        env = "VARWATCH_DATA_DIR",
        conflicts_with = "etcd"
    )]
    data_dir: Option<PathBuf>,
    /// With --data-dir, when a write is acknowledged: `always` (synced to
    /// disk first; writers share syncs), `interval:<duration>` (written at
    /// once, synced every interval, e.g. `interval:100ms`) or `never`
    /// (written at once, synced by the OS). A killed server loses nothing
    /// under any of them; a lost machine, up to the interval.
    #[arg(long, help_heading = "Storage", env = "VARWATCH_DURABILITY", requires = "data_dir", default_value = "always", value_parser = durability)]
    durability: varwatch::durable::Durability,
    /// Most sessions the store holds at once (creating one more fails with
    /// RESOURCE_EXHAUSTED). Default: no limit. Not with --etcd.
    #[arg(
        long,
        help_heading = "Store",
        conflicts_with = "etcd",
        env = "VARWATCH_MAX_SESSIONS"
    )]
    max_sessions: Option<usize>,
    /// TTL of sessions created without one, e.g. `10m` (default: they never
    /// expire). Not with --etcd (an etcd session's TTL is its lease's).
    #[arg(long, help_heading = "Store", conflicts_with = "etcd", env = "VARWATCH_DEFAULT_TTL", value_parser = positive_duration)]
    default_ttl: Option<Duration>,
    /// How often expired sessions are removed (and their watches ended with
    /// SESSION_CLOSED); at least 10ms. Not with --etcd.
    #[arg(long, help_heading = "Store", conflicts_with = "etcd", env = "VARWATCH_SWEEP_INTERVAL", default_value = "1s", value_parser = positive_duration)]
    sweep_interval: Duration,
    /// The largest capacity, in events, a lossless watch may be granted (a
    /// session's event log holds at most the largest among its watches).
    /// Not with --etcd.
    #[arg(long, help_heading = "Store", conflicts_with = "etcd", env = "VARWATCH_MAX_EVENT_LOG", default_value_t = 1 << 20)]
    max_event_log: usize,
    /// With --etcd: how often the server checks that the cluster answers (a
    /// linearizable read). When it does not, health turns NOT_SERVING, open
    /// watches end with UNAVAILABLE and calls are refused, so that clients
    /// given several servers move to another; when it answers again, the
    /// server serves again.
    #[arg(long, help_heading = "etcd", env = "VARWATCH_HEALTH_INTERVAL", requires = "etcd", default_value = "1s", value_parser = positive_duration)]
    health_interval: Duration,
    /// Keep the sessions on this etcd cluster instead of in memory (its
    /// client URLs, comma-separated; the binary must be built with feature
    /// `etcd`). Servers on one etcd serve the same sessions.
    #[arg(long, help_heading = "etcd", env = "VARWATCH_ETCD", value_delimiter = ',')]
    etcd: Vec<String>,
    /// Every etcd key of the store starts with this.
    #[arg(
        long,
        help_heading = "etcd",
        env = "VARWATCH_ETCD_PREFIX",
        default_value = "varwatch/"
    )]
    etcd_prefix: String,
    /// etcd user (with --etcd-password-file).
    #[arg(
        long,
        help_heading = "etcd",
        env = "VARWATCH_ETCD_USER",
        requires = "etcd_password_file"
    )]
    etcd_user: Option<String>,
    /// A file holding the etcd user's password (trimmed).
    #[arg(
        long,
        help_heading = "etcd",
        env = "VARWATCH_ETCD_PASSWORD_FILE",
        requires = "etcd_user"
    )]
    etcd_password_file: Option<PathBuf>,
    /// PEM CA certificate that etcd's server certificate is checked against
    /// (TLS to etcd; `https://` endpoints).
    #[arg(long, help_heading = "etcd", env = "VARWATCH_ETCD_CA")]
    etcd_ca: Option<PathBuf>,
    /// PEM client certificate for etcd (with --etcd-key).
    #[arg(
        long,
        help_heading = "etcd",
        env = "VARWATCH_ETCD_CERT",
        requires = "etcd_key"
    )]
    etcd_cert: Option<PathBuf>,
    /// PEM private key of --etcd-cert.
    #[arg(
        long,
        help_heading = "etcd",
        env = "VARWATCH_ETCD_KEY",
        requires = "etcd_cert"
    )]
    etcd_key: Option<PathBuf>,
}

/// Every `VARWATCH_*` variable the server reads: the flags' own (one
/// list, clap's).
fn known_env() -> Vec<String> {
    use clap::CommandFactory;
    Args::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .filter_map(|e| e.to_str().map(str::to_string))
        .collect()
}

/// `VARWATCH_*` variables the server does not read: a security setting
/// spelled wrong (`VARWATCH_TOKEN` for `VARWATCH_TOKEN_FILE`) must not leave
/// the server open while its operator believes it closed. Returns the
/// unknown ones; a token, password or key among them is an error.
fn unknown_env() -> Result<Vec<String>, String> {
    let known = known_env();
    let unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("VARWATCH_") && !known.contains(k))
        .collect();
    let secret = |k: &String| {
        ["TOKEN", "PASSWORD", "SECRET", "KEY", "CERT", "TLS", "AUTH"]
            .iter()
            .any(|w| k.contains(w))
    };
    if let Some(k) = unknown.iter().find(|k| secret(k)) {
        return Err(format!(
            "{k} is set but varwatch-server does not read it; refusing to start rather than serve \
             without the security setting you meant (the token is read from a file: \
             --token-file or VARWATCH_TOKEN_FILE; see --help)"
        ));
    }
    Ok(unknown)
}

/// The store's settings from the flags.
fn store_config(args: &Args) -> varwatch::StoreConfig {
    let mut config = varwatch::StoreConfig::new()
        .sweep_interval(args.sweep_interval)
        .max_event_log(args.max_event_log);
    if let Some(n) = args.max_sessions {
        config = config.max_sessions(n);
    }
    if let Some(ttl) = args.default_ttl {
        config = config.default_ttl(ttl);
    }
    config
}

/// `always`, `interval:<duration>` or `never`.
fn durability(s: &str) -> Result<varwatch::durable::Durability, String> {
    use varwatch::durable::Durability;
    match s.trim() {
        "always" => Ok(Durability::Always),
        "never" => Ok(Durability::Never),
        other => match other.strip_prefix("interval:") {
            // A bare number is seconds elsewhere, but `interval:100`
            // reads as milliseconds to many: ask for the unit.
            Some(d) if d.trim().chars().all(|c| c.is_ascii_digit()) => Err(format!(
                "`{other}`: give the interval a unit, e.g. interval:{}ms or interval:{}s",
                d.trim(),
                d.trim()
            )),
            Some(d) => Ok(Durability::Interval(duration(d)?)),
            None => Err(format!(
                "`{other}` is not a durability: use always, interval:<duration> (e.g. interval:100ms) or never"
            )),
        },
    }
}

/// A [`duration`] that is not zero.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err(format!("`{}`: must be more than zero", s.trim())),
        d => Ok(d),
    }
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

/// The `EnvFilter` for `--log`: a bare level more verbose than `warn` is
/// varwatch's own (the library and this binary), others stay at `warn` —
/// `debug` must not mean HTTP/2 frame dumps; a filter is taken as given.
fn log_filter(log: &str) -> String {
    let level = log.trim().to_ascii_lowercase();
    match level.as_str() {
        "info" | "debug" | "trace" => format!("warn,varwatch={level},varwatch_server={level}"),
        _ => log.to_string(),
    }
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(log_filter(&args.log))?);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        // Colours for a person at a terminal, plain lines for log files.
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init();
    }

    let unknown = unknown_env()?;
    for k in &unknown {
        warn!(variable = %k, "ignoring an environment variable varwatch-server does not read (see --help)");
    }
    if let Some(dir) = &args.data_dir {
        let options = varwatch::durable::DurableOptions::new().durability(args.durability);
        let (store, recovery) = SessionStore::open(dir, store_config(&args), options)?;
        info!(
            dir = %dir.display(),
            durability = ?args.durability,
            sessions = store.list_sessions().len(),
            snapshot = ?recovery.snapshot,
            journal_entries = recovery.entries,
            torn_tail_bytes = recovery.torn.as_ref().map(|(_, b)| *b),
            "sessions opened from disk"
        );
        serve(store, &args).await
    } else if args.etcd.is_empty() {
        warn!(
            "the sessions are kept in memory: they are lost when this server stops (use --data-dir or --etcd to keep them)"
        );
        serve(SessionStore::with_config(store_config(&args)), &args).await
    } else {
        let store = etcd(&args).await?;
        serve_etcd(store, &args).await
    }
}

/// Serves the etcd store, with health (and serving) following whether the
/// cluster answers: a replica cut off from etcd turns `NOT_SERVING`, ends
/// its watch streams and refuses calls, so that clients move to a replica
/// that can serve them.
#[cfg(feature = "etcd")]
async fn serve_etcd(
    store: varwatch::etcd::AsyncEtcdStore,
    args: &Args,
) -> Result<(), Box<dyn std::error::Error>> {
    let probe = store.clone();
    let every = args.health_interval;
    serve_with(store, args, move |service| {
        service.health_probe(every, move || {
            let store = probe.clone();
            async move { store.check().await.is_ok() }
        })
    })
    .await
}

#[cfg(not(feature = "etcd"))]
async fn serve_etcd(store: SessionStore, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    serve(store, args).await
}

/// The etcd store of `--etcd` and its options.
#[cfg(feature = "etcd")]
async fn etcd(args: &Args) -> Result<varwatch::etcd::AsyncEtcdStore, Box<dyn std::error::Error>> {
    use varwatch::etcd::etcd_client::ConnectOptions;
    use varwatch::etcd::{EtcdConfig, EtcdStore};
    let mut opts = ConnectOptions::new();
    if let (Some(user), Some(path)) = (&args.etcd_user, &args.etcd_password_file) {
        let password = String::from_utf8(read(path, "etcd password file")?)?;
        opts = opts.with_user(user.clone(), password.trim().to_string());
    }
    if args.etcd_ca.is_some() || args.etcd_cert.is_some() {
        use varwatch::etcd::etcd_client::{Certificate, Identity as EtcdIdentity, TlsOptions};
        let mut tls = TlsOptions::new();
        if let Some(ca) = &args.etcd_ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca, "etcd CA certificate")?));
        }
        if let (Some(cert), Some(key)) = (&args.etcd_cert, &args.etcd_key) {
            tls = tls.identity(EtcdIdentity::from_pem(
                read(cert, "etcd client certificate")?,
                read(key, "etcd client key")?,
            ));
        }
        opts = opts.with_tls(tls);
    }
    let config = EtcdConfig::new()
        .prefix(args.etcd_prefix.clone())
        .connect_options(opts);
    let endpoints = args.etcd.clone();
    // The store runs its own runtime: connect off this one.
    let store = tokio::task::spawn_blocking(move || EtcdStore::connect(endpoints, config)).await??;
    info!(endpoints = %args.etcd.join(","), prefix = %args.etcd_prefix, "sessions kept on etcd");
    Ok(store.to_async())
}

#[cfg(not(feature = "etcd"))]
async fn etcd(_: &Args) -> Result<SessionStore, Box<dyn std::error::Error>> {
    Err("--etcd needs a varwatch-server built with feature `etcd` (cargo build --release --features server,etcd)".into())
}

/// Serves `store` with the flags' limits, token and TLS until a signal.
async fn serve<S>(store: S, args: &Args) -> Result<(), Box<dyn std::error::Error>>
where
    S: AsyncVarStore + Clone + Send + Sync + 'static,
{
    serve_with(store, args, |service| service).await
}

/// [`serve`], with `configure` applied to the service last (the etcd
/// store's health probe).
async fn serve_with<S>(
    store: S,
    args: &Args,
    configure: impl FnOnce(GrpcService<S>) -> GrpcService<S>,
) -> Result<(), Box<dyn std::error::Error>>
where
    S: AsyncVarStore + Clone + Send + Sync + 'static,
{
    for id in &args.session {
        store.get_or_create_session(id, SessionOptions::new()).await?;
    }
    let mut service = GrpcService::new(store)
        .max_connections(args.max_connections)
        .max_watches(args.max_watches)
        .max_watches_per_connection(args.max_watches_per_connection)
        .max_value_bytes(args.max_value_bytes)
        .max_metadata_bytes(args.max_metadata_bytes)
        .max_watch_message_bytes(args.max_watch_message_bytes)
        .max_batch_items(args.max_batch_items)
        .heartbeat_interval(args.heartbeat_interval)
        .heartbeat_timeout(args.heartbeat_timeout)
        .idle_timeout(args.idle_timeout)
        .handshake_timeout(args.handshake_timeout);
    if let Some(n) = args.max_message_bytes {
        service = service.max_message_bytes(n);
    }
    if let Some(path) = &args.token_file {
        let token = String::from_utf8(read(path, "token file")?)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the token file {} is empty", path.display()).into());
        }
        service = service.bearer_token(token);
    } else {
        warn!("no bearer token (--token-file): every client that reaches this address is served");
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let identity = Identity::from_pem(read(cert, "certificate")?, read(key, "key")?);
            service = service.tls(ServerTlsConfig::new().identity(identity));
            true
        }
        _ => false,
    };

    let service = configure(service);
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
