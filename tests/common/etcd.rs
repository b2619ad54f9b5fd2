//! etcd for the tests of feature `etcd`: the server `scripts/with-etcd.sh`
//! started (`VARWATCH_ETCD`), or a private one a test can restart
//! (`VARWATCH_ETCD_BIN`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use varwatch::VarStore;
use varwatch::etcd::{EtcdConfig, EtcdStore};

/// The tests that need etcd are `#[ignore]`d with this reason, so that a
/// run without etcd says they did not run (never a pass); run them through
/// the script, which starts etcd, with `--include-ignored`.
#[allow(dead_code)]
pub const NEEDS_ETCD: &str = "needs etcd";

/// The value of `var`, which `scripts/with-etcd.sh` sets; a clear failure
/// without it (an ignored test run on purpose must not pass unrun).
fn var(what: &str, var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{what}: no etcd ({var} is not set). Run it with: \
             scripts/with-etcd.sh cargo test --features etcd,server --test etcd -- --include-ignored"
        ),
    }
}

/// The shared etcd's client URL.
pub fn endpoint(what: &str) -> String {
    var(what, "VARWATCH_ETCD")
}

/// A prefix no other test (or earlier run) uses.
pub fn fresh_prefix(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "test/{test}/{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on the shared etcd under a fresh prefix.
pub fn store(test: &str) -> EtcdStore {
    let url = endpoint(test);
    EtcdStore::connect([url], EtcdConfig::new().prefix(fresh_prefix(test))).unwrap()
}

/// A second client of the same etcd and prefix (as another process would be).
pub fn peer(store: &EtcdStore, url: &str) -> EtcdStore {
    EtcdStore::connect([url], store.config().clone()).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private etcd server, on fixed ports and data directory, so that it can
/// be stopped and started again with its data.
pub struct EtcdServer {
    bin: String,
    pub url: String,
    peer: String,
    data: PathBuf,
    child: Option<Child>,
}

impl EtcdServer {
    /// Starts one.
    pub fn start(what: &str) -> EtcdServer {
        let bin = var(what, "VARWATCH_ETCD_BIN");
        let data = std::env::temp_dir().join(fresh_prefix("etcd-data").replace('/', "_"));
        let client = free_port();
        let peer = loop {
            let p = free_port();
            if p != client {
                break p;
            }
        };
        let mut s = EtcdServer {
            bin,
            url: format!("http://127.0.0.1:{client}"),
            peer: format!("http://127.0.0.1:{peer}"),
            data,
            child: None,
        };
        s.run();
        s
    }

    /// Starts the process and waits until it answers.
    pub fn run(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(&self.bin)
            .args(["--name", "t", "--data-dir"])
            .arg(&self.data)
            .args([
                "--listen-client-urls",
                &self.url,
                "--advertise-client-urls",
                &self.url,
            ])
            .args([
                "--listen-peer-urls",
                &self.peer,
                "--initial-advertise-peer-urls",
                &self.peer,
            ])
            .args([
                "--initial-cluster",
                &format!("t={}", self.peer),
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        let port = self.url.rsplit(':').next().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err() {
            assert!(Instant::now() < deadline, "etcd did not start");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
