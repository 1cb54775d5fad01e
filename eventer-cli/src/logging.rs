//! Log lines on stderr, held back while eventer starts: a start that fails prints its one
//! error line and nothing before it.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError},
};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

use crate::{args::LogFormat, config::Settings};

/// Held lines beyond this many bytes are let out: a start logs far less at the default level.
const HOLD_LIMIT: usize = 1 << 20;

/// Where log lines go: held while the gate is closed, then stderr.
#[derive(Clone)]
pub(crate) struct StartGate(Arc<Mutex<Option<Vec<u8>>>>);

impl StartGate {
    /// Let the held lines out, and every later one as it comes.
    pub(crate) fn open(&self) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(lines) = held.take() {
            // Still under the lock, so that no newer line overtakes them. A failed write has
            // nowhere to be reported: stderr is where errors go.
            io::stderr().write_all(&lines).unwrap_or_default();
        }
    }
}

/// One log line's writer.
pub(crate) struct GateWriter(StartGate);

impl Write for GateWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut held = (self.0).0.lock().unwrap_or_else(PoisonError::into_inner);
        match held.as_mut() {
            Some(lines) if lines.len() + buf.len() <= HOLD_LIMIT => {
                lines.extend_from_slice(buf);
                Ok(buf.len())
            }
            Some(_) => {
                let lines = held.take().unwrap_or_default();
                let mut stderr = io::stderr().lock();
                stderr.write_all(&lines)?;
                stderr.write_all(buf)?;
                Ok(buf.len())
            }
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for StartGate {
    type Writer = GateWriter;

    fn make_writer(&'a self) -> GateWriter {
        GateWriter(self.clone())
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> GateWriter {
        // A warning or an error is news the operator needs now, with what led to it.
        if *meta.level() <= Level::WARN {
            self.open();
        }
        self.make_writer()
    }
}

/// Log to stderr as `settings` say. At the default level lines are held until the returned
/// gate is opened (once every part has started); a failed start drops them. With `-v`
/// every line shows at once.
pub(crate) fn init(settings: &Settings) -> StartGate {
    let level = match settings.verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let gate = StartGate(Arc::new(Mutex::new((settings.verbosity == 0).then(Vec::new))));
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colours only for people: a pipe or a log collector gets plain text.
    let ansi = io::IsTerminal::is_terminal(&io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(gate.clone()).with_ansi(ansi);
    match settings.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    gate
}
