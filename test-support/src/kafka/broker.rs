//! A private tansu broker behind a counting proxy, for the kafka scaler's tests and benchmark.
//!
//! tansu listens on one port and advertises the proxy's port, so every connection a client
//! makes (bootstrap and broker) goes through the proxy. The proxy counts the Kafka requests by
//! API key, which is how the tests check the number of round trips per poll, and it can be
//! taken down and brought back to simulate a network outage, or the broker itself killed
//! (SIGKILL) and started again on the same port and data.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

// Kafka API keys by name, for the requests the tests look at.

/// The API key of Metadata requests.
pub const METADATA: i16 = 3;
/// The API key of ListOffsets requests.
pub const LIST_OFFSETS: i16 = 2;
/// The API key of OffsetFetch requests.
pub const OFFSET_FETCH: i16 = 9;
/// The API key of FindCoordinator requests.
pub const FIND_COORDINATOR: i16 = 10;

/// The name of a Kafka API key, for printing.
pub fn api_name(key: i16) -> String {
    match key {
        0 => "Produce".into(),
        1 => "Fetch".into(),
        2 => "ListOffsets".into(),
        3 => "Metadata".into(),
        8 => "OffsetCommit".into(),
        9 => "OffsetFetch".into(),
        10 => "FindCoordinator".into(),
        11 => "JoinGroup".into(),
        12 => "Heartbeat".into(),
        13 => "LeaveGroup".into(),
        14 => "SyncGroup".into(),
        17 => "SaslHandshake".into(),
        18 => "ApiVersions".into(),
        19 => "CreateTopics".into(),
        k => format!("api{k}"),
    }
}

#[derive(Default)]
struct ProxyState {
    counts: BTreeMap<i16, u64>,
    connections: u64,
    open: Vec<TcpStream>,
}

/// The proxy's state; a panic while holding it is already a failed test.
fn lock(state: &Mutex<ProxyState>) -> MutexGuard<'_, ProxyState> {
    state.lock().expect("proxy state")
}

/// A tansu broker reachable only through a proxy that counts requests.
pub struct PrivateBroker {
    child: Child,
    tansu: String,
    dir: PathBuf,
    /// `127.0.0.1:<proxy port>`: what clients bootstrap from.
    pub bootstrap: String,
    proxy_port: u16,
    broker_port: u16,
    up: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<ProxyState>>,
}

/// Starts tansu and waits until it accepts connections.
fn spawn_tansu(tansu: &str, dir: &std::path::Path, broker_port: u16, proxy_port: u16) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .expect("log file");
    let child = Command::new(tansu)
        .current_dir(dir)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{broker_port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{proxy_port}"),
            "--storage-engine",
            "sqlite://tansu.db",
            "--silent",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start tansu");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", broker_port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivateBroker {
    /// Starts tansu (`KEDGE_TANSU_BIN`) on the SQLite engine in a fresh temp dir, and the proxy.
    pub fn start(tansu: &str) -> Self {
        let broker_port = free_port();
        let proxy_port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "kedge-tansu-{}-{}",
            std::process::id(),
            broker_port
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = spawn_tansu(tansu, &dir, broker_port, proxy_port);
        let broker = Self {
            child,
            tansu: tansu.to_owned(),
            dir,
            bootstrap: format!("127.0.0.1:{proxy_port}"),
            proxy_port,
            broker_port,
            up: Arc::new(AtomicBool::new(false)),
            stop: Arc::new(AtomicBool::new(false)),
            state: Arc::new(Mutex::new(ProxyState::default())),
        };
        broker.proxy_up();
        broker
    }

    /// Kills the broker process (SIGKILL: no clean shutdown) and cuts every open connection.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut state = lock(&self.state);
        for s in state.open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Starts the broker again after [`PrivateBroker::kill`], on the same port and data.
    pub fn restart(&mut self) {
        self.child = spawn_tansu(&self.tansu, &self.dir, self.broker_port, self.proxy_port);
    }

    /// Requests seen so far, by API key.
    pub fn counts(&self) -> BTreeMap<i16, u64> {
        lock(&self.state).counts.clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        lock(&self.state).connections
    }

    /// Requests of each kind sent while `f` ran (other clients of this broker must be idle).
    pub fn requests_during<T>(&self, f: impl FnOnce() -> T) -> (T, BTreeMap<i16, u64>) {
        let before = self.counts();
        let out = f();
        // Let in-flight requests reach the proxy's counters.
        std::thread::sleep(Duration::from_millis(50));
        let after = self.counts();
        let diff = after
            .into_iter()
            .map(|(k, v)| (k, v - before.get(&k).copied().unwrap_or(0)))
            .filter(|(_, v)| *v > 0)
            .collect();
        (out, diff)
    }

    /// Takes the broker away: the port refuses connections and open ones are cut.
    pub fn proxy_down(&self) {
        self.up.store(false, Ordering::SeqCst);
        // The accept loop notices within its polling interval and closes the listener.
        std::thread::sleep(Duration::from_millis(100));
        let mut state = lock(&self.state);
        for s in state.open.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Brings the broker back on the same port.
    pub fn proxy_up(&self) {
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.proxy_port)) {
                Ok(l) => break l,
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        listener.set_nonblocking(true).expect("nonblocking");
        self.up.store(true, Ordering::SeqCst);
        let (up, stop, state, port) = (
            Arc::clone(&self.up),
            Arc::clone(&self.stop),
            Arc::clone(&self.state),
            self.broker_port,
        );
        std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                            continue;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        {
                            let mut st = lock(&state);
                            st.connections += 1;
                            st.open.push(client.try_clone().expect("a client socket"));
                            st.open.push(server.try_clone().expect("a broker socket"));
                        }
                        pipe(client, server, Arc::clone(&state));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }
}

/// Copies bytes both ways; on the way to the broker, reads Kafka's framing (4-byte length,
/// then the request header starting with the API key) to count requests.
fn pipe(client: TcpStream, server: TcpStream, state: Arc<Mutex<ProxyState>>) {
    let (mut c_read, mut s_write) = (
        client.try_clone().expect("a client socket"),
        server.try_clone().expect("a broker socket"),
    );
    std::thread::spawn(move || {
        let mut len = [0u8; 4];
        loop {
            if c_read.read_exact(&mut len).is_err() {
                break;
            }
            let n = i32::from_be_bytes(len).max(0) as usize;
            let mut body = vec![0u8; n];
            if c_read.read_exact(&mut body).is_err() {
                break;
            }
            if n >= 2 {
                let key = i16::from_be_bytes([body[0], body[1]]);
                *lock(&state).counts.entry(key).or_default() += 1;
            }
            if s_write.write_all(&len).is_err() || s_write.write_all(&body).is_err() {
                break;
            }
        }
        let _ = s_write.shutdown(Shutdown::Both);
    });
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(Shutdown::Both);
    });
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.proxy_down();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
