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

/// A private cluster of `n` etcd members on loopback, whose members can be
/// frozen (SIGSTOP) and thawed (SIGCONT).
pub struct EtcdCluster {
    pub urls: Vec<String>,
    children: Vec<Child>,
    data: Vec<PathBuf>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until the cluster has a leader.
    pub fn start(what: &str, n: usize) -> EtcdCluster {
        let bin = var(what, "VARWATCH_ETCD_BIN");
        let mut ports = Vec::new();
        while ports.len() < 2 * n {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let peers: Vec<String> = (0..n)
            .map(|i| format!("http://127.0.0.1:{}", ports[n + i]))
            .collect();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={p}"))
            .collect();
        let token = fresh_prefix("cluster").replace('/', "_");
        let mut c = EtcdCluster {
            urls: (0..n).map(|i| format!("http://127.0.0.1:{}", ports[i])).collect(),
            children: Vec::new(),
            data: Vec::new(),
        };
        for (i, (url, peer)) in c.urls.clone().iter().zip(&peers).enumerate() {
            let data = std::env::temp_dir().join(format!("{token}-m{i}"));
            let child = Command::new(&bin)
                .args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(&data)
                .args(["--listen-client-urls", url, "--advertise-client-urls", url])
                .args(["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer])
                .args([
                    "--initial-cluster",
                    &initial.join(","),
                    "--initial-cluster-token",
                    &token,
                ])
                .args(["--initial-cluster-state", "new", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd starts");
            c.children.push(child);
            c.data.push(data);
        }
        // A leader: a write through every member goes through.
        let deadline = Instant::now() + Duration::from_secs(60);
        for url in &c.urls {
            loop {
                assert!(Instant::now() < deadline, "the etcd cluster did not form");
                let probe = EtcdStore::connect(
                    [url.as_str()],
                    EtcdConfig::new()
                        .prefix(fresh_prefix("probe"))
                        .call_timeout(Duration::from_secs(2)),
                );
                if let Ok(s) = probe
                    && s.get_or_create_session("probe", Default::default()).is_ok()
                {
                    break;
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        c
    }

    fn signal(&self, i: usize, sig: &str) {
        let pid = self.children[i].id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap().success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Stops member `i` where it stands (SIGSTOP): its connections stay
    /// open and it answers nothing.
    pub fn freeze(&self, i: usize) {
        self.signal(i, "-STOP");
    }

    /// Lets member `i` go on (SIGCONT).
    pub fn thaw(&self, i: usize) {
        self.signal(i, "-CONT");
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.children[i].id().to_string()])
                .status();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.data {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
