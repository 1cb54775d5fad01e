//! Requests to the apiserver with every phase bounded: an apiserver (or a proxy in front
//! of it) that accepts a request and never answers, or a stream that goes quiet, is
//! noticed and retried instead of stalling the source for ever.

use std::time::Duration;

use bytes::{Buf, Bytes};
use eventer_core::{Error, ErrorKind};
use futures::FutureExt as _;
use http_body_util::BodyExt;
use kube::client::Body;
use serde::Deserialize;

/// The longest `Retry-After` honoured: a larger one (a misconfigured proxy) would stop the
/// source for longer than any outage it announces.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The most of an error response read, to show its `Status`.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Why a request stopped.
#[derive(Debug)]
pub(crate) enum Trouble {
    /// The version is gone (410): relist.
    Gone,
    /// Retry after a backoff (or the error's retry-after).
    Retry(Error),
    /// No answer within a timeout: retry, and say that the apiserver stalled.
    Stalled(Error),
    /// Give up: the source fails with this.
    Fatal(Error),
    /// The source is gone.
    Closed,
}

/// Send `req` and wait for the status and headers at most `timeout` (connecting
/// included); a failure status is classified from its `Status` body and `Retry-After`.
pub(crate) async fn send(
    client: &kube::Client,
    req: http::Request<Vec<u8>>,
    what: &str,
    timeout: Duration,
) -> Result<http::Response<Body>, Trouble> {
    let response = match tokio::time::timeout(timeout, client.send(req.map(Body::from))).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => return Err(transport(e, what)),
        Err(_) => {
            return Err(Trouble::Stalled(Error::new(
                ErrorKind::Unavailable,
                format!("the apiserver sent no response to the {what} within {timeout:?}"),
            )));
        }
    };
    if response.status().is_success() {
        return Ok(response);
    }
    let code = response.status().as_u16();
    let header_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let body = Lines::new(response.into_body(), MAX_ERROR_BODY);
    // The status code decides; the body only explains it, so a body that does not come
    // in time is left out.
    let text = body.rest(timeout).await.unwrap_or_default();
    let status: StatusBody = serde_json::from_slice(&text).unwrap_or_default();
    let retry_after = header_after.or(status.details.retry_after_seconds);
    Err(classify(code, &status, retry_after, what))
}

/// Read a whole response body, waiting at most `timeout` for each chunk.
pub(crate) async fn text(response: http::Response<Body>, what: &str, timeout: Duration) -> Result<String, Trouble> {
    let bytes = Lines::new(response.into_body(), usize::MAX).rest(timeout).await.map_err(|e| e.during(what))?;
    String::from_utf8(bytes).map_err(|e| {
        Trouble::Retry(
            Error::new(ErrorKind::Decode, format!("the {what} answered with text that is not UTF-8")).with_source(e),
        )
    })
}

/// A failure while reading a body.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Nothing arrived within the timeout.
    Idle(Duration),
    /// The connection broke.
    Broken(kube::Error),
}

impl ReadError {
    pub(crate) fn during(self, what: &str) -> Trouble {
        match self {
            ReadError::Idle(t) => {
                Trouble::Stalled(Error::new(ErrorKind::Unavailable, format!("the {what} sent nothing for {t:?}")))
            }
            ReadError::Broken(e) => {
                Trouble::Retry(Error::new(ErrorKind::Unavailable, format!("the {what} broke")).with_source(e))
            }
        }
    }
}

/// A line of a watch stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A line (its newline removed), perhaps not UTF-8, borrowed from the reader's buffer:
    /// decoding copies what it keeps, so a copy per line here would be a second one.
    Text(&'a [u8]),
    /// A line longer than the cap, skipped without keeping it: its length in bytes.
    TooLong(usize),
}

/// Splits a response body into lines of at most `max` bytes; longer lines are skipped as
/// they stream by, so memory stays bounded whatever the apiserver sends.
pub(crate) struct Lines<B = Body> {
    body: B,
    buf: Vec<u8>,
    /// Where the next line starts in `buf`: lines handed out stay behind it until no whole
    /// line is left, then go in one move (shifting the rest out per line cost a copy of
    /// the whole chunk per line).
    start: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
    max: usize,
    /// Bytes of an over-long line skipped so far.
    skipping: Option<usize>,
    /// How the body ended (its end, or a broken connection), found by [`Lines::ready`]
    /// before the lines read ahead of it were handed out.
    ended: Option<Result<Option<Bytes>, ReadError>>,
}

impl<B> Lines<B>
where
    B: http_body::Body<Data = Bytes, Error = kube::Error> + Unpin,
{
    pub(crate) fn new(body: B, max: usize) -> Self {
        Lines { body, buf: Vec::new(), start: 0, scanned: 0, max, skipping: None, ended: None }
    }

    /// Where the next newline is in `buf`, if one came; found once, whether by
    /// [`Lines::ready`] or [`Lines::next`].
    fn newline(&mut self) -> Option<usize> {
        // Every byte of a watch passes here: memchr's SIMD scan, not a byte-at-a-time loop
        // (a twentieth of the watch path's CPU time).
        match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            Some(at) => {
                self.scanned += at;
                Some(self.scanned)
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Whether a whole line can be had without waiting for the network: one is buffered,
    /// or the connection already holds more of the body, which is taken in. The connection
    /// runs in a task of its own and hands over one chunk at a time, so this yields to it
    /// before each look.
    pub(crate) async fn ready(&mut self) -> bool {
        loop {
            if self.newline().is_some() {
                return true;
            }
            if self.ended.is_some() {
                return false;
            }
            tokio::task::yield_now().await;
            let Some(frame) = self.body.frame().now_or_never() else { return false };
            match outcome(frame) {
                None => {}
                Some(Ok(Some(data))) => {
                    self.make_room();
                    self.buf.extend_from_slice(&data);
                }
                Some(end) => self.ended = Some(end),
            }
        }
    }

    /// Drop the lines handed out, and the start of a line that is already too long.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.buf.len() > self.max {
            *self.skipping.get_or_insert(0) += self.buf.len();
            self.buf.clear();
            self.scanned = 0;
        }
    }

    /// The next line; `None` at the end of the body. Waits at most `idle` for each chunk.
    pub(crate) async fn next(&mut self, idle: Duration) -> Result<Option<Line<'_>>, ReadError> {
        // The line handed out last is no longer borrowed: when it was the last one buffered,
        // the buffer starts again from its beginning.
        if self.start == self.buf.len() {
            self.buf.clear();
            (self.start, self.scanned) = (0, 0);
        }
        loop {
            if let Some(end) = self.newline() {
                let start = std::mem::replace(&mut self.start, end + 1);
                self.scanned = end + 1;
                let len = end - start;
                return Ok(Some(match self.skipping.take() {
                    Some(skipped) => Line::TooLong(skipped + len + 1),
                    None if len > self.max => Line::TooLong(len + 1),
                    None => Line::Text(&self.buf[start..end]),
                }));
            }
            self.make_room();
            match self.chunk(idle).await? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    // A body that ends inside a line: hand over what came (it will not decode).
                    if let Some(skipped) = self.skipping.take() {
                        return Ok(Some(Line::TooLong(skipped + self.buf.len())));
                    }
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    (self.start, self.scanned) = (self.buf.len(), self.buf.len());
                    return Ok(Some(Line::Text(&self.buf)));
                }
            }
        }
    }

    /// Everything left, up to `max` bytes (the rest is read and dropped).
    pub(crate) async fn rest(mut self, idle: Duration) -> Result<Vec<u8>, ReadError> {
        while let Some(chunk) = self.chunk(idle).await? {
            let room = self.max.saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        Ok(self.buf)
    }

    /// The next chunk of data; `None` at the end.
    async fn chunk(&mut self, idle: Duration) -> Result<Option<Bytes>, ReadError> {
        if let Some(ended) = self.ended.take() {
            return ended;
        }
        loop {
            match tokio::time::timeout(idle, self.body.frame()).await {
                Err(_) => return Err(ReadError::Idle(idle)),
                Ok(frame) => {
                    if let Some(outcome) = outcome(frame) {
                        return outcome;
                    }
                }
            }
        }
    }
}

/// What a frame of the body means to [`Lines`], whether waited for or already there:
/// data, the end, a broken connection, or (`None`) nothing for us, as trailers and empty
/// chunks carry.
fn outcome(frame: Option<Result<http_body::Frame<Bytes>, kube::Error>>) -> Option<Result<Option<Bytes>, ReadError>> {
    match frame {
        None => Some(Ok(None)),
        Some(Err(e)) => Some(Err(ReadError::Broken(e))),
        Some(Ok(frame)) => frame.into_data().ok().filter(Buf::has_remaining).map(|data| Ok(Some(data))),
    }
}

/// What eventer reads of a `metav1.Status`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusBody {
    reason: String,
    message: String,
    details: StatusDetails,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct StatusDetails {
    retry_after_seconds: Option<u64>,
}

/// Sort a failure status into relist, retry or give up.
fn classify(code: u16, status: &StatusBody, retry_after: Option<u64>, what: &str) -> Trouble {
    let reason = if status.reason.is_empty() {
        http::StatusCode::from_u16(code).ok().and_then(|c| c.canonical_reason()).unwrap_or("").replace(' ', "")
    } else {
        status.reason.clone()
    };
    let said = format!("apiserver answered {code} {reason} for the {what}: {}", status.message);
    let error = match code {
        410 => return Trouble::Gone,
        // Credentials rotate and RBAC gets fixed: worth retrying, loudly.
        401 => Error::new(ErrorKind::Unauthorized, format!("{said} (check the token or kubeconfig)")).temporary(),
        403 => {
            let rule = if what.contains("namespace") { "get on namespaces" } else { "list and watch on events" };
            Error::new(ErrorKind::Unauthorized, format!("{said} (RBAC must allow {rule})")).temporary()
        }
        400 | 404 | 405 | 422 => return Trouble::Fatal(Error::new(ErrorKind::Config, said)),
        _ => Error::new(ErrorKind::Unavailable, said),
    };
    // client-go honours Retry-After on 429 and 5xx (priority and fairness, a starting
    // apiserver, a resourceVersion not reached yet).
    let error = match retry_after {
        Some(secs) if code == 429 || code >= 500 => {
            error.with_retry_after(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
        }
        _ => error,
    };
    Trouble::Retry(error)
}

/// A request that got no response.
fn transport(e: kube::Error, what: &str) -> Trouble {
    match e {
        kube::Error::Auth(_) => Trouble::Retry(
            Error::new(ErrorKind::Unauthorized, "cannot load the credentials").with_source(e).temporary(),
        ),
        _ => Trouble::Retry(
            Error::new(ErrorKind::Unavailable, format!("cannot reach the apiserver for the {what}")).with_source(e),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    type Chunks = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<http_body::Frame<Bytes>, kube::Error>>>>;

    fn body(chunks: &[&[u8]]) -> Chunks {
        let frames: Vec<_> = chunks.iter().map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c)))).collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    async fn lines(chunks: &[&[u8]], max: usize) -> Vec<String> {
        let mut lines = Lines::new(body(chunks), max);
        let mut out = Vec::new();
        while let Some(line) = lines.next(Duration::from_secs(1)).await.unwrap() {
            out.push(shown(line));
            assert!(out.len() < 100, "bounded");
        }
        out
    }

    /// A line kept past the next read, which reuses the reader's buffer.
    fn shown(line: Line<'_>) -> String {
        match line {
            Line::Text(text) => String::from_utf8(text.to_vec()).unwrap(),
            Line::TooLong(len) => too_long(len),
        }
    }

    fn text(s: &str) -> String {
        s.to_owned()
    }

    fn too_long(len: usize) -> String {
        format!("<{len} bytes skipped>")
    }

    #[tokio::test]
    async fn lines_across_chunks() {
        assert_eq!(lines(&[b"ab\ncd", b"e\n\nf", b"g\n"], 10).await, [text("ab"), text("cde"), text(""), text("fg")]);
        assert_eq!(lines(&[b"ab", b"c"], 10).await, [text("abc")]);
        assert_eq!(lines(&[], 10).await, Vec::<String>::new());
    }

    async fn next_line<B>(lines: &mut Lines<B>) -> Option<String>
    where
        B: http_body::Body<Data = Bytes, Error = kube::Error> + Unpin,
    {
        lines.next(Duration::from_secs(1)).await.unwrap().map(shown)
    }

    #[tokio::test(start_paused = true)]
    async fn lines_received_are_told_apart_from_lines_still_to_come() {
        // Two chunks received, then a connection with nothing more for now.
        let received = futures::StreamExt::chain(
            futures::stream::iter(
                [&b"ab\ncd\nef"[..], b"g\nh"].map(|c| Ok(http_body::Frame::data(Bytes::from_static(c)))),
            ),
            futures::stream::pending(),
        );
        let mut lines = Lines::new(StreamBody::new(received), 10);
        assert!(lines.ready().await, "ab came");
        assert_eq!(next_line(&mut lines).await, Some(text("ab")));
        assert!(lines.ready().await, "cd came in the same chunk");
        assert_eq!(next_line(&mut lines).await, Some(text("cd")));
        assert!(lines.ready().await, "the rest of efg came in the next chunk");
        assert_eq!(next_line(&mut lines).await, Some(text("efg")));
        assert!(!lines.ready().await, "h is not a whole line, and nothing more came");
        assert!(matches!(lines.next(Duration::from_secs(1)).await, Err(ReadError::Idle(_))));

        // The end of the body is noticed ahead, and still comes after the lines before it.
        let mut lines = Lines::new(body(&[b"x\ny"]), 10);
        assert!(lines.ready().await);
        assert_eq!(next_line(&mut lines).await, Some(text("x")));
        assert!(!lines.ready().await, "the body ended inside y");
        assert_eq!(next_line(&mut lines).await, Some(text("y")));
        assert_eq!(next_line(&mut lines).await, None);
    }

    #[tokio::test]
    async fn long_lines_are_skipped_in_bounded_memory() {
        // 10 bytes fit; 11 do not, in one chunk or spread over many.
        assert_eq!(
            lines(&[b"0123456789\n0123456789A\nok\n"], 10).await,
            [text("0123456789"), too_long(12), text("ok")]
        );
        let many: Vec<&[u8]> = std::iter::repeat_n(&b"xxxxxxx"[..], 50).chain([&b"\nok\n"[..]]).collect();
        assert_eq!(lines(&many, 10).await, [too_long(351), text("ok")]);
        let mut reader = Lines::new(body(&many), 10);
        reader.next(Duration::from_secs(1)).await.unwrap();
        assert!(reader.buf.capacity() < 64, "the long line was not kept: {}", reader.buf.capacity());
        // Cut off inside a long line.
        assert_eq!(lines(&[b"ok\n", b"0123456789ABC"], 10).await, [text("ok"), too_long(13)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_body_is_an_idle_error() {
        let quiet = StreamBody::new(futures::stream::pending::<Result<http_body::Frame<Bytes>, kube::Error>>());
        let mut lines = Lines::new(quiet, 10);
        assert!(
            matches!(lines.next(Duration::from_secs(90)).await, Err(ReadError::Idle(d)) if d == Duration::from_secs(90))
        );
    }

    #[test]
    fn statuses_are_classified_with_their_retry_after() {
        let status = |reason: &str| StatusBody { reason: reason.into(), message: "m".into(), ..StatusBody::default() };
        let after = |t: Trouble| match t {
            Trouble::Retry(e) => e.retry_after(),
            other => panic!("{other:?}"),
        };
        assert_eq!(after(classify(429, &status("TooManyRequests"), Some(7), "list")), Some(Duration::from_secs(7)));
        assert_eq!(after(classify(504, &status("Timeout"), Some(1), "watch")), Some(Duration::from_secs(1)));
        assert_eq!(after(classify(429, &status(""), Some(86_400), "list")), Some(MAX_RETRY_AFTER));
        assert_eq!(after(classify(500, &status(""), None, "list")), None);
        assert!(matches!(classify(410, &status("Expired"), None, "watch"), Trouble::Gone));
        assert!(matches!(classify(422, &status("Invalid"), None, "watch"), Trouble::Fatal(_)));
        match classify(503, &status(""), None, "list of /api/v1/events") {
            Trouble::Retry(e) => {
                assert_eq!(e.message(), "apiserver answered 503 ServiceUnavailable for the list of /api/v1/events: m")
            }
            other => panic!("{other:?}"),
        }
    }
}
