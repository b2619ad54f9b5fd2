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

/// Whether this run must have etcd (CI): then a missing one fails the test
/// instead of skipping it.
fn required() -> bool {
    std::env::var_os("CI").is_some()
}

fn skip(what: &str, var: &str) -> Option<String> {
    assert!(
        !required(),
        "{what}: {var} is not set under CI: run the etcd tests through scripts/with-etcd.sh"
    );
    eprintln!(
        "SKIPPED {what}: no etcd ({var} is not set). Run it with: \
         scripts/with-etcd.sh cargo test --features etcd --test etcd"
    );
    None
}

/// The shared etcd's client URL, or `None` (and a message) to skip.
pub fn endpoint(what: &str) -> Option<String> {
    match std::env::var("VARWATCH_ETCD") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => skip(what, "VARWATCH_ETCD"),
    }
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

/// A store on the shared etcd under a fresh prefix, or `None` to skip.
pub fn store(test: &str) -> Option<EtcdStore> {
    let url = endpoint(test)?;
    Some(EtcdStore::connect([url], EtcdConfig::new().prefix(fresh_prefix(test))).unwrap())
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
    /// Starts one, or `None` (and a message) to skip.
    pub fn start(what: &str) -> Option<EtcdServer> {
        let bin = match std::env::var("VARWATCH_ETCD_BIN") {
            Ok(b) if !b.is_empty() => b,
            _ => {
                skip(what, "VARWATCH_ETCD_BIN")?;
                unreachable!()
            }
        };
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
        Some(s)
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
