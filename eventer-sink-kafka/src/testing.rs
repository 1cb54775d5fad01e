//! A real Kafka-protocol broker for tests: `tansu`, started on a free loopback port with a
//! SQLite store that survives a restart, and a real consumer to read back what was written.
//!
//! The broker is a separate program: `cargo install tansu --locked --features libsql`
//! (CI's script installs it). [`Broker::start`] panics when it is missing, so a test that
//! needs it fails loudly instead of skipping.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
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
    tls: Option<(PathBuf, PathBuf)>,
    authentication: bool,
    child: Option<Child>,
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
             cargo install tansu --locked --features libsql (or set TANSU=<path>)",
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

    /// A broker with TLS or authentication.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// `127.0.0.1:<port>`, for `brokers=`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let mut command = Command::new(&self.bin);
        command
            .arg("broker")
            .args(["--listener-url", &self.url(), "--advertised-listener-url", &self.url()])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((cert, key)) = &self.tls {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if self.authentication {
            command.arg("--authentication");
        }
        self.child = Some(command.spawn().expect("tansu starts"));
        let address: SocketAddr = self.address().parse().expect("an address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {address} within 30s");
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
            .set("security.protocol", if self.tls.is_some() { "ssl" } else { "plaintext" })
            .set("enable.ssl.certificate.verification", "false")
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
                Some(Err(e)) => panic!("consuming {topic}: {e}"),
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
    tls: Option<(PathBuf, PathBuf)>,
}

impl BrokerBuilder {
    /// Serve TLS with this PEM certificate and key.
    pub fn tls(mut self, cert: PathBuf, key: PathBuf) -> Self {
        self.tls = Some((cert, key));
        self
    }

    /// Start the broker.
    ///
    /// # Panics
    /// When `tansu` is not installed or does not come up within 30 seconds.
    pub fn start(self) -> Broker {
        // A free port: tansu takes its listener as a URL, not an open socket.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut broker = Broker {
            bin: tansu(),
            dir: tempfile::tempdir().expect("a directory for the store"),
            port,
            tls: self.tls,
            authentication: false,
            child: None,
        };
        broker.run();
        broker
    }
}
