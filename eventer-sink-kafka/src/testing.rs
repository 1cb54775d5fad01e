//! A real Kafka-protocol broker for tests: `tansu`, started on a free loopback port with a
//! SQLite store that survives a restart, and a real consumer to read back what was written.
//!
//! The broker is a separate program: `cargo install tansu --version 0.6.0 --locked --features libsql`
//! (CI's script installs it). [`Broker::start`] panics when it is missing, so a test that
//! needs it fails loudly instead of skipping.

use std::{
    collections::HashSet,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
    message::Headers as _,
};

/// A `tansu` broker on `127.0.0.1`, stopped when dropped.
#[derive(Debug)]
pub struct Broker {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    authentication: bool,
    child: Option<Child>,
    /// Produce answers the proxy in front of the broker is to lose.
    lose: Option<Arc<AtomicUsize>>,
    /// The port clients use: the proxy's, else the broker's.
    advertised: u16,
}

/// A message read back from a topic.
#[derive(Debug, Clone)]
pub struct Message {
    /// The partition it is in.
    pub partition: i32,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its value, as text.
    pub value: String,
    /// Its headers, as text.
    pub headers: Vec<(String, String)>,
    /// Its timestamp, milliseconds since the epoch.
    pub timestamp: Option<i64>,
}

/// The `tansu` program: `$TANSU`, else on `PATH`, else in Cargo's `bin` directory.
fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return path.into();
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(cargo_bin)
        .map(|dir| dir.join("tansu"))
        .find(|path| path.is_file())
        .expect(
            "the Kafka-protocol broker `tansu` is not installed: \
             cargo install tansu --version 0.6.0 --locked --features libsql (or set TANSU=<path>)",
        )
}

impl Broker {
    /// Start a broker with an empty store.
    ///
    /// # Panics
    /// When `tansu` is not installed or does not come up within 30 seconds.
    pub fn start() -> Broker {
        Broker::builder().start()
    }

    /// A broker with a proxy in front.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// `127.0.0.1:<port>`, for `brokers=`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.advertised)
    }

    /// Lose the answers to the next `n` produce requests, as a network failure after the
    /// broker stored a batch does: the connection closes instead, and the producer sends the
    /// batch again. Needs [`BrokerBuilder::proxy`].
    ///
    /// # Panics
    /// Without the proxy.
    pub fn lose_produce_answers(&self, n: usize) {
        self.lose.as_ref().expect("a broker built with .proxy()").store(n, Ordering::SeqCst);
    }

    /// How many of the answers [`Broker::lose_produce_answers`] asked for are still to lose.
    pub fn answers_to_lose(&self) -> usize {
        self.lose.as_ref().map_or(0, |lose| lose.load(Ordering::SeqCst))
    }

    /// The broker's own log (its stderr), for a failing test's message.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("tansu.log")
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let mut command = Command::new(&self.bin);
        command
            .arg("broker")
            .args(["--listener-url", &self.url()])
            .args(["--advertised-listener-url", &format!("tcp://{}", self.address())])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        // Its log (stdout and stderr) is kept for a failing test's message.
        match std::fs::File::options().create(true).append(true).open(self.log()) {
            Ok(log) => {
                command.stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from)).stderr(log);
            }
            Err(_) => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        if self.authentication {
            command.arg("--authentication");
        }
        self.child = Some(command.spawn().expect("tansu starts"));
        let address: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("an address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {address} within 30s; its log:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the broker (as a crash: no clean shutdown). The store stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // It may have exited already; either way it is gone once waited for.
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Start the stopped broker again, on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    fn tansu(&self, args: &[&str]) {
        let status = Command::new(&self.bin)
            .args(args)
            .args(["--broker", &self.url()])
            .stdout(Stdio::null())
            .status()
            .expect("tansu runs");
        assert!(status.success(), "tansu {args:?} failed: {status}");
    }

    /// Create `topic` with `partitions` partitions (the broker creates none on first use).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.tansu(&["topic", "create", topic, "--partitions", &partitions.to_string()]);
    }

    /// Add a SCRAM-SHA-512 user (before [`BrokerBuilder::authentication`] takes effect on
    /// a restart).
    pub fn create_user(&self, name: &str, password: &str) {
        self.tansu(&["user", "create", name, password, "--mechanism", "scram512"]);
    }

    /// Turn client authentication on or off for the next [`Broker::restart`].
    pub fn set_authentication(&mut self, on: bool) {
        self.authentication = on;
    }

    /// Every message of `topic` (all partitions, from the start), read with librdkafka's
    /// consumer until `expected` arrived or nothing new came for `quiet` (bounded by 120s).
    pub fn consume(&self, topic: &str, expected: usize, quiet: Duration) -> Vec<Message> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("group.id", "eventer-tests")
            .set("enable.auto.commit", "false")
            .create()
            .expect("a consumer");
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("an offset");
        }
        consumer.assign(&assignment).expect("assigned");
        let mut messages = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = Instant::now();
        while messages.len() < expected && last.elapsed() < quiet && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
                    let headers = m
                        .headers()
                        .map(|h| h.iter().map(|h| (h.key.to_owned(), text(h.value).unwrap_or_default())).collect())
                        .unwrap_or_default();
                    messages.push(Message {
                        partition: m.partition(),
                        key: text(m.key()),
                        value: text(m.payload()).unwrap_or_default(),
                        headers,
                        timestamp: m.timestamp().to_millis(),
                    });
                    last = Instant::now();
                }
                Some(Err(e)) => panic!(
                    "consuming {topic}: {e}; the broker's log:\n{}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                ),
                None => {}
            }
        }
        messages
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Options of a test [`Broker`].
#[derive(Debug, Default)]
pub struct BrokerBuilder {
    proxy: bool,
}

impl BrokerBuilder {
    /// Put a proxy in front of the broker (advertised to clients in its place) that can
    /// lose answers: [`Broker::lose_produce_answers`].
    pub fn proxy(mut self) -> Self {
        self.proxy = true;
        self
    }

    /// Start the broker.
    ///
    /// # Panics
    /// When `tansu` is not installed or does not come up within 30 seconds.
    pub fn start(self) -> Broker {
        // A free port: tansu takes its listener as a URL, not an open socket.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let (lose, advertised) = if self.proxy {
            let (lose, port) = proxy(port);
            (Some(lose), port)
        } else {
            (None, port)
        };
        let mut broker = Broker {
            bin: tansu(),
            dir: tempfile::tempdir().expect("a directory for the store"),
            port,
            authentication: false,
            child: None,
            lose,
            advertised,
        };
        broker.run();
        broker
    }
}

/// A proxy on a free port in front of `127.0.0.1:<upstream>` that forwards Kafka's
/// length-prefixed frames and, while its counter is above zero, drops the answer to a
/// produce request and closes both connections. Its threads end with their connections;
/// the listener lives as long as the test process.
fn proxy(upstream: u16) -> (Arc<AtomicUsize>, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a proxy port");
    let port = listener.local_addr().expect("an address").port();
    let lose = Arc::new(AtomicUsize::new(0));
    let counter = lose.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                client.shutdown(Shutdown::Both).ok();
                continue;
            };
            let produces = Arc::new(Mutex::new(HashSet::new()));
            let (c2, s2, p2) = (client.try_clone(), server.try_clone(), produces.clone());
            let (Ok(c2), Ok(s2)) = (c2, s2) else { continue };
            // Requests: note the correlation ids of produce requests (api key 0).
            std::thread::spawn(move || {
                forward(client, server, |frame| {
                    if frame.len() >= 8 && frame[..2] == [0, 0] {
                        let id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                        p2.lock().expect("not poisoned").insert(id);
                    }
                    true
                })
            });
            // Answers: drop a produce answer while asked to, and the connection with it.
            let counter = counter.clone();
            std::thread::spawn(move || {
                forward(s2, c2, |frame| {
                    let id = frame.get(..4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                    let produce = id.is_some_and(|id| produces.lock().expect("not poisoned").remove(&id));
                    !(produce && counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok())
                })
            });
        }
    });
    (lose, port)
}

/// Copy frames from `from` to `to` while `pass` says so; then close both.
fn forward(mut from: TcpStream, mut to: TcpStream, mut pass: impl FnMut(&[u8]) -> bool) {
    let mut frame = Vec::new();
    loop {
        let mut size = [0u8; 4];
        if from.read_exact(&mut size).is_err() {
            break;
        }
        frame.resize(u32::from_be_bytes(size) as usize, 0);
        if from.read_exact(&mut frame).is_err() || !pass(&frame) {
            break;
        }
        if to.write_all(&size).and_then(|()| to.write_all(&frame)).is_err() {
            break;
        }
    }
    from.shutdown(Shutdown::Both).ok();
    to.shutdown(Shutdown::Both).ok();
}
