//! The `varwatch-server` binary as an operator runs it: flags, a token file,
//! a client's calls and watch, and a graceful shutdown on SIGTERM that ends
//! the watch and exits 0. Every wait is bounded and waits for a condition.
#![cfg(all(feature = "server", unix, not(loom)))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::transport::{RemoteConfig, RemoteStore};
use varwatch::{ErrorCode, RecvTimeoutError, Value, VarDef, VarType, WatchOptions};

/// The running binary; killed if a test fails before stopping it.
struct Running {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
    /// Every line read so far.
    seen: std::cell::RefCell<Vec<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_varwatch-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("VARWATCH_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        addr: String::new(),
        lines,
        seen: Default::default(),
    };
    let line = running.wait_for("listening");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    running.addr = addr.to_string();
    running
}

impl Running {
    /// The first log line (from now) containing `needle`.
    fn wait_for(&self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.borrow_mut().push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("the server never logged {needle:?}: {e}"),
            }
        }
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        // Bounded: a graceful shutdown that waited forever on an open watch
        // stream is exactly the failure this catches.
        for _ in 0..600 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the server did not stop within 60 s of SIGTERM");
    }
}

#[test]
fn serves_with_a_token_and_stops_gracefully_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("varwatch-server-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let mut server = start(&["--token-file", token_file.to_str().unwrap(), "--session", "a,b"]);

    // Without the token: refused, naming what is missing.
    let anonymous = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    let err = anonymous.list_sessions().unwrap_err();
    assert_eq!(err.code(), ErrorCode::Unauthenticated, "{err}");

    let remote = RemoteStore::connect(&server.addr, RemoteConfig::new().token("s3cret")).unwrap();
    let mut sessions = remote.list_sessions().unwrap();
    sessions.sort();
    assert_eq!(sessions, ["a", "b"], "--session a,b made both");
    remote
        .register("a", VarDef::new("x", VarType::Integer, 0))
        .unwrap();
    let mut watch = remote.watch("a", ["x"], WatchOptions::new()).unwrap();
    assert!(watch.recv().unwrap().is_initial());
    assert_eq!(remote.update("a", "x", 5).unwrap(), 1);
    assert_eq!(watch.recv().unwrap().value(), Some(&Value::Integer(5)));

    // The server stops although a watch stream is open (it ends the watches
    // with UNAVAILABLE first, then drains), and exits 0.
    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    // The client's watch outlives the server: it waits to reconnect and
    // invents nothing meanwhile.
    assert!(matches!(
        watch.recv_timeout(Duration::from_millis(200)),
        Err(RecvTimeoutError::Timeout)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--log debug` is varwatch's own debug: each connection's open and close
/// with an id, every watch line with its connection's id, and none of the
/// HTTP/2 frame dumps of the crates below.
#[test]
fn log_debug_names_connections_and_their_watches() {
    let mut server = start(&["--log", "debug", "--session", "a"]);
    {
        let remote = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
        remote
            .register("a", VarDef::new("x", VarType::Integer, 0))
            .unwrap();
        let opened = server.wait_for("connection opened");
        let id = opened
            .split_whitespace()
            .find_map(|w| w.strip_prefix("conn="))
            .unwrap_or_else(|| panic!("no connection id in {opened:?}"))
            .to_string();
        let mut watch = remote.watch("a", ["x"], WatchOptions::new()).unwrap();
        assert!(watch.recv().unwrap().is_initial());
        let created = server.wait_for("watch created");
        assert!(created.contains(&format!("conn{{id={id}}}")), "{created:?}");
        remote.close();
        while watch.recv().is_some() {}
        assert_eq!(watch.close_reason(), Some(varwatch::CloseReason::Disconnected));
        // Closing the client closes its connection, though the ended
        // watch (and the client) are still held.
        let closed = server.wait_for("connection closed");
        assert!(closed.contains(&format!("conn={id}")), "{closed:?}");
        drop((watch, remote));
    }
    let _ = server.terminate();
    let mut all = server.seen.take();
    all.extend(server.lines.try_iter());
    assert!(
        !all.iter().any(|l| l.contains("h2::") || l.contains("hyper")),
        "lines of other crates at debug: {all:?}"
    );
}

/// The store's settings have flags: a default TTL and the sweeper expire
/// a session nobody touches, the session limit refuses one more.
#[test]
fn the_store_settings_are_flags() {
    let server = start(&[
        "--default-ttl",
        "300ms",
        "--sweep-interval",
        "20ms",
        "--max-sessions",
        "2",
        "--max-event-log",
        "16",
    ]);
    let client = RemoteStore::connect(&server.addr, RemoteConfig::new()).unwrap();
    let a = client
        .create_session("a", varwatch::SessionOptions::new())
        .unwrap();
    assert_eq!(a.ttl, Some(Duration::from_millis(300)), "the default TTL");
    client
        .create_session("b", varwatch::SessionOptions::new())
        .unwrap();
    let refused = client
        .create_session("c", varwatch::SessionOptions::new())
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ResourceExhausted, "{refused}");
    // Nobody touches them (a listing is no access): the sweeper removes
    // them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while client.list_sessions().unwrap().iter().any(|s| s == "a") {
        assert!(std::time::Instant::now() < deadline, "the session did not expire");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--log-format json`: one JSON object per line.
#[test]
fn log_format_json_writes_json_lines() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_varwatch-server"))
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("VARWATCH_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let listening = lines
        .by_ref()
        .take(20)
        .inspect(|l| assert!(l.starts_with('{') && l.ends_with('}'), "not JSON: {l}"))
        .find(|l| l.contains("varwatch-server listening"))
        .expect("a listening line");
    assert!(listening.contains("\"addr\":\"127.0.0.1:"), "{listening}");
    assert!(listening.contains("\"level\":\"INFO\""), "{listening}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_flags_fail_with_a_message() {
    for args in [
        &["--heartbeat-interval", "5 parsecs"][..],
        &["--tls-cert", "/nonexistent"][..],
        &["--token-file", "/nonexistent/token"][..],
        &["--data-dir", "/tmp", "--durability", "sometimes"][..],
        // A unitless interval is refused, not read as seconds.
        &["--data-dir", "/tmp", "--durability", "interval:100"][..],
        &["--data-dir", "/dev/null/not-a-dir"][..],
        &["--data-dir", "/tmp", "--etcd", "http://127.0.0.1:2379"][..],
        // The store's settings are the in-process store's, not etcd's.
        &["--default-ttl", "1m", "--etcd", "http://127.0.0.1:2379"][..],
        &["--log-format", "xml"][..],
        &["--default-ttl", "0s"][..],
        // Settings of a store that is not there.
        &["--durability", "never"][..],
        &["--health-interval", "2s"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_varwatch-server"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: no message");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
