//! A running `eventer` for the binary tests: stdout as lines, stderr (its log) collected in
//! the background so that a chatty process never blocks on a full pipe.
// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::{process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines},
    net::TcpStream,
    process::{Child, ChildStdout, Command},
    sync::mpsc,
};

#[cfg(feature = "source-k8s")]
pub(crate) mod chat;

/// The binary under test: `$EVENTER_BIN` when set (CI runs these tests again on the shipped
/// build), else the one Cargo built for them.
pub(crate) fn eventer_bin() -> std::path::PathBuf {
    std::env::var_os("EVENTER_BIN").map_or_else(|| env!("CARGO_BIN_EXE_eventer").into(), Into::into)
}

/// How long any expected output may take.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// `eventer` in the workspace root (the tests read `examples/`), on its own loopback
/// health port, logging as its flags say whatever `RUST_LOG` the tests run with.
pub(crate) fn eventer() -> Command {
    let mut command = Command::new(eventer_bin());
    command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--healthz-ip=127.0.0.1", "--healthz-port=0"])
        .env_remove("RUST_LOG");
    command
}

/// A running `eventer`.
pub(crate) struct Eventer {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: mpsc::UnboundedReceiver<String>,
    /// Stderr lines received so far.
    log: Vec<String>,
}

impl Eventer {
    /// `eventer --source=<source> <args>` with its own loopback health port.
    pub(crate) fn spawn(source: &str, args: &[&str]) -> Eventer {
        Eventer::spawn_with(source, args, &[])
    }

    /// The same with environment variables set (`Some`) or removed (`None`).
    pub(crate) fn spawn_with(source: &str, args: &[&str], env: &[(&str, Option<&str>)]) -> Eventer {
        let mut command = Command::new(eventer_bin());
        command
            .arg(format!("--source={source}"))
            .args(args)
            .args(["--healthz-ip=127.0.0.1", "--healthz-port=0"])
            .env_remove("RUST_LOG")
            .env_remove("KUBECONFIG");
        for (key, value) in env {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (tx, stderr) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err_lines.next_line().await {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Eventer { child, stdout, stderr, log: Vec::new() }
    }

    /// The next `n` stdout lines.
    pub(crate) async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let line = tokio::time::timeout(PATIENCE, self.stdout.next_line()).await;
            match line {
                Ok(Ok(Some(line))) => out.push(line),
                Ok(_) => panic!("eventer exited after {} of {n} lines; stderr:\n{}", out.len(), self.log().await),
                Err(_) => {
                    panic!("no output for {PATIENCE:?} after {} of {n} lines; stderr:\n{}", out.len(), self.log().await)
                }
            }
        }
        out
    }

    /// The next `n` events, with `--sink=stdout?format=json`.
    pub(crate) async fn events(&mut self, n: usize) -> Vec<Value> {
        self.lines(n).await.iter().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    /// Wait for a stderr line matching `pred`; returns it.
    pub(crate) async fn wait_log(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        if let Some(line) = self.log.iter().find(|l| pred(l)) {
            return line.clone();
        }
        loop {
            match tokio::time::timeout_at(deadline, self.stderr.recv()).await {
                Ok(Some(line)) => {
                    self.log.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!("eventer exited without logging {what}; stderr:\n{}", self.log.join("\n")),
                Err(_) => panic!("eventer did not log {what} within {PATIENCE:?}; stderr:\n{}", self.log.join("\n")),
            }
        }
    }

    /// Drop the stderr lines received so far, so that [`Eventer::wait_log`] waits for a new one.
    pub(crate) fn forget_log(&mut self) {
        while self.stderr.try_recv().is_ok() {}
        self.log.clear();
    }

    /// Every stderr line received so far.
    pub(crate) async fn log(&mut self) -> String {
        while let Ok(line) = self.stderr.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// Peak resident memory (`VmHWM`) of the process so far, in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id().unwrap())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The address of the health and metrics server, from its startup log line.
    pub(crate) async fn server_addr(&mut self) -> String {
        let line = self.wait_log("the server address", |l| l.contains("Serving /healthz")).await;
        let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).expect("addr= in the log line");
        addr.to_owned()
    }

    /// SIGKILL; returns the rest of stdout.
    pub(crate) async fn kill(mut self) -> Vec<String> {
        self.signal("-KILL");
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.unwrap().unwrap();
        assert!(!status.success());
        let mut rest = Vec::new();
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success());
    }

    /// SIGTERM; returns the rest of stdout and the whole of stderr. The process must exit
    /// cleanly and must not have panicked.
    pub(crate) async fn stop(mut self) -> (Vec<String>, String) {
        self.signal("-TERM");
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(PATIENCE, self.stdout.next_line()).await.unwrap().unwrap() {
            rest.push(line);
        }
        let status = tokio::time::timeout(PATIENCE, self.child.wait()).await.unwrap().unwrap();
        while let Some(line) = tokio::time::timeout(PATIENCE, self.stderr.recv()).await.unwrap() {
            self.log.push(line);
        }
        let log = self.log.join("\n");
        assert!(status.success(), "{status:?}; stderr:\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        (rest, log)
    }
}

/// A plain HTTP/1.1 GET of eventer's health server: status and body.
pub(crate) async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: eventer\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// Poll `path` until `done` holds for its status and body.
pub(crate) async fn poll(addr: &str, path: &str, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (status, body) = get(addr, path).await;
            if done(status, &body) {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{path} never reached the expected state"))
}

/// The value of an unlabelled counter or gauge in OpenMetrics text (0 when absent).
pub(crate) fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0, |v| v.parse().unwrap())
}
