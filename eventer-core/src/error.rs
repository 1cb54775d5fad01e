//! The one error type of eventer-core, shared by sources, sinks and the pipeline.

use std::{error::Error as StdError, fmt, time::Duration};

/// A boxed error usable as a [`Error`] source.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: enough for callers to decide what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Invalid configuration: a URI, an option, a file the user named. Not retryable.
    Config,
    /// Input that could not be decoded (an event file, a watch line).
    Decode,
    /// Credentials were refused (401/403, a bad signature, an unknown token).
    Unauthorized,
    /// The remote end asked us to slow down.
    RateLimited,
    /// The remote end is unreachable, timed out or failed transiently.
    Unavailable,
    /// The remote end refused the data itself (too large, malformed, unknown destination).
    Rejected,
    /// Local I/O (files, checkpoints).
    Io,
    /// Anything else.
    Unexpected,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Decode => "decode error",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Io => "i/o error",
            ErrorKind::Unexpected => "unexpected error",
        })
    }
}

/// An eventer error: a kind, a lowercase message, an optional source and a retry hint.
///
/// `Display` prints the message only; walk [`std::error::Error::source`] (or use
/// anyhow's `{:#}`) for the cause, so nothing is printed twice.
///
/// ```
/// use eventer_core::{Error, ErrorKind};
/// let err = Error::new(ErrorKind::Unavailable, "robot answered 502").temporary();
/// assert!(err.is_temporary());
/// assert_eq!(err.to_string(), "robot answered 502");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: String,
    temporary: bool,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
    component: Option<String>,
}

impl Error {
    /// A new error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let temporary = matches!(kind, ErrorKind::RateLimited | ErrorKind::Unavailable);
        Error { kind, message: message.into(), temporary, retry_after: None, source: None, component: None }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// Attach the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Mark the error as transient: retrying later may succeed.
    #[must_use]
    pub fn temporary(mut self) -> Self {
        self.temporary = true;
        self
    }

    /// Mark the error as permanent: retrying will not help.
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.temporary = false;
        self
    }

    /// A server-provided delay before the next attempt.
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Name the part of the pipeline that failed: `source`, `sink/<name>` or `checkpoint`,
    /// as in `/readyz`. The pipeline tags what it returns, so that a front end can point
    /// at the setting that configured that part (the CLI names the flag).
    #[must_use]
    pub fn in_component(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }

    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The part of the pipeline that failed, when known (see [`Error::in_component`]).
    pub fn component(&self) -> Option<&str> {
        self.component.as_deref()
    }

    /// Whether retrying may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The server-provided delay, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message followed by every cause, joined with `: ` on one line (causes that
    /// print several lines, such as regex errors, are folded).
    pub fn chain(&self) -> String {
        let mut out = self.message.clone();
        let mut next = self.source.as_deref().map(|e| e as &(dyn StdError + 'static));
        while let Some(e) = next {
            let text = e.to_string();
            if !out.ends_with(text.as_str()) {
                out.push_str(": ");
                out.extend(text.split_whitespace().flat_map(|w| [w, " "]));
                out.pop();
            }
            next = e.source();
        }
        out
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        d.field("temporary", &self.temporary);
        if let Some(after) = self.retry_after {
            d.field("retry_after", &after);
        }
        if let Some(component) = &self.component {
            d.field("component", component);
        }
        if let Some(source) = &self.source {
            d.field("source", &source.to_string());
        }
        d.finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, "i/o error").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_sources_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::new(ErrorKind::Io, "cannot read events.json").with_source(io);
        assert_eq!(err.to_string(), "cannot read events.json");
        assert_eq!(err.chain(), "cannot read events.json: no such file");
        let multi = Error::config("option message: invalid regex")
            .with_source(std::io::Error::other("line one\n  ^\nline two"));
        assert_eq!(multi.chain(), "option message: invalid regex: line one ^ line two");
        assert!(!err.is_temporary());
    }

    #[test]
    fn transient_kinds_default_to_temporary() {
        assert!(Error::new(ErrorKind::Unavailable, "x").is_temporary());
        assert!(Error::new(ErrorKind::RateLimited, "x").is_temporary());
        assert!(!Error::new(ErrorKind::Rejected, "x").is_temporary());
        assert!(!Error::new(ErrorKind::Unavailable, "x").permanent().is_temporary());
    }
}
