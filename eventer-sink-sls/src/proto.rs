//! The PutLogs body: SLS's proto2 `LogGroup` (`aliyun/log/log_logs.proto`), derived by hand.
//!
//! proto2 `required` fields are plain (always emitted) fields here; `Log.Time_ns` is a
//! `fixed32`, not a varint.

use prost::{bytes::Bytes, encoding::encoded_len_varint};

use crate::sign::content_md5;

/// One `Key`/`Value` pair of a [`Log`] (`Log.Content`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct LogContent {
    /// Field name.
    #[prost(string, required, tag = "1")]
    pub(crate) key: String,
    /// Field value.
    #[prost(string, required, tag = "2")]
    pub(crate) value: String,
}

/// One log: a timestamp and its fields.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct Log {
    /// `__time__`, Unix seconds.
    #[prost(uint32, required, tag = "1")]
    pub(crate) time: u32,
    /// The fields, in order.
    #[prost(message, repeated, tag = "2")]
    pub(crate) contents: Vec<LogContent>,
    /// The nanosecond part of the time (0..1e9).
    #[prost(fixed32, optional, tag = "4")]
    pub(crate) time_ns: Option<u32>,
}

/// A tag shared by every log of a group (`__tag__:<key>`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct LogTag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub(crate) key: String,
    /// Tag value.
    #[prost(string, required, tag = "2")]
    pub(crate) value: String,
}

/// The body of one PutLogs request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub(crate) struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub(crate) logs: Vec<Log>,
    /// `__topic__`.
    #[prost(string, optional, tag = "3")]
    pub(crate) topic: Option<String>,
    /// `__source__`.
    #[prost(string, optional, tag = "4")]
    pub(crate) source: Option<String>,
    /// `__tag__:<key>` for each tag.
    #[prost(message, repeated, tag = "6")]
    pub(crate) log_tags: Vec<LogTag>,
}

/// A log group encoded and compressed for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The LZ4 raw block (no frame, no size prefix), as sent; cheap to clone for a re-send.
    pub bytes: Bytes,
    /// Size of the protobuf before compression (`x-log-bodyrawsize`).
    pub raw_size: usize,
    /// `Content-MD5` of [`Body::bytes`].
    pub md5: String,
}

/// Compresses encoded [`LogGroup`]s into [`Body`]s, reusing its multi-megabyte work buffer:
/// a fresh one per request costs page faults on every write.
#[derive(Debug, Default)]
pub struct Compressor {
    out: Vec<u8>,
}

impl Compressor {
    /// Compress an encoded [`LogGroup`].
    pub fn compress(&mut self, raw: &[u8]) -> Body {
        let max = lz4_flex::block::get_maximum_output_size(raw.len());
        if self.out.len() < max {
            // Exactly: `resize` alone may double the buffer.
            self.out.reserve_exact(max - self.out.len());
            self.out.resize(max, 0);
        }
        let n = lz4_flex::block::compress_into(raw, &mut self.out).expect("the buffer has the maximum compressed size");
        let bytes = Bytes::copy_from_slice(&self.out[..n]);
        Body { md5: content_md5(&bytes), raw_size: raw.len(), bytes }
    }

    /// Free the work buffer: kept after a burst, it would stay resident while idle.
    pub fn release(&mut self) {
        self.out = Vec::new();
    }
}

// Streaming encoding: the bytes prost produces for a `LogGroup`, written log by log from
// borrowed fields, without building the owned messages (one allocation per field would
// cost more than everything else the sink does per event). Tags are single bytes (all
// field numbers are below 16) and varints are written inline: prost's generic helpers cost
// a call per tag and length, a hundred per log. Checked byte for byte against prost's
// encoding of the equivalent messages in the tests.

/// `(field << 3) | wire type` of the fields written here.
const LOGS: u8 = 1 << 3 | 2;
const LOG_TIME: u8 = 1 << 3;
const LOG_CONTENTS: u8 = 2 << 3 | 2;
const LOG_TIME_NS: u8 = 4 << 3 | 5;
const KEY: u8 = 1 << 3 | 2;
const VALUE: u8 = 2 << 3 | 2;
const TOPIC: u8 = 3 << 3 | 2;
const SOURCE: u8 = 4 << 3 | 2;
const LOG_TAGS: u8 = 6 << 3 | 2;

#[inline]
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Encoded size of a length-delimited field holding `len` bytes, tag included.
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn pair_len(key: &str, value: &str) -> usize {
    delimited(key.len()) + delimited(value.len())
}

/// Encoded size of one `Log.Contents` entry, tag included.
pub(crate) fn content_size(key: &str, value: &str) -> usize {
    delimited(pair_len(key, value))
}

/// Encoded size of a [`Log`] whose contents take `contents` bytes ([`content_size`] summed),
/// without its own tag and length prefix.
pub(crate) fn log_len(time: u32, contents: usize) -> usize {
    1 + encoded_len_varint(u64::from(time)) + contents + 1 + 4
}

/// Size of one `LogGroup.Logs` entry whose log is `log_len` bytes.
pub(crate) fn framed(log_len: usize) -> usize {
    delimited(log_len)
}

#[inline]
fn put_str(buf: &mut Vec<u8>, tag: u8, s: &str) {
    buf.push(tag);
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

#[inline]
fn put_pair(buf: &mut Vec<u8>, tag: u8, key: &str, value: &str) {
    buf.push(tag);
    put_varint(buf, pair_len(key, value) as u64);
    put_str(buf, KEY, key);
    put_str(buf, VALUE, value);
}

/// Start one `LogGroup.Logs` entry; `len` is [`log_len`] of what follows: its
/// [`put_content`]s and [`put_log_end`].
pub(crate) fn put_log_start(buf: &mut Vec<u8>, time: u32, len: usize) {
    buf.push(LOGS);
    put_varint(buf, len as u64);
    buf.push(LOG_TIME);
    put_varint(buf, u64::from(time));
}

/// Append one `Log.Contents` entry.
#[inline]
pub(crate) fn put_content(buf: &mut Vec<u8>, key: &str, value: &str) {
    put_pair(buf, LOG_CONTENTS, key, value);
}

/// Finish a log started with [`put_log_start`].
pub(crate) fn put_log_end(buf: &mut Vec<u8>, time_ns: u32) {
    buf.push(LOG_TIME_NS);
    buf.extend_from_slice(&time_ns.to_le_bytes());
}

/// The `LogGroup` fields after the logs (topic, source, tags), as prost orders them.
pub(crate) fn group_trailer(topic: Option<&str>, source: &str, tags: &[(String, String)]) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(topic) = topic {
        put_str(&mut buf, TOPIC, topic);
    }
    put_str(&mut buf, SOURCE, source);
    for (key, value) in tags {
        put_pair(&mut buf, LOG_TAGS, key, value);
    }
    buf
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// B.10 EX4: the uncompressed body the Python SDK sends for one log.
    const EX4_BODY: &str = "0a4f088081c8ac0612110a06726561736f6e12074261636b4f6666122f0a076d65737361676512244261636b2d6f66662072657374617274696e67206661696c656420636f6e7461696e65722515cd5b071a096b38732d6576656e74220831302e302e302e3132160a0c5f5f686f73746e616d655f5f12066e6f64652d31";

    fn content(key: &str, value: &str) -> LogContent {
        LogContent { key: key.into(), value: value.into() }
    }

    #[test]
    fn a_released_compressor_frees_its_buffer_and_still_compresses() {
        let mut c = Compressor::default();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        c.compress(&big);
        assert!(c.out.capacity() >= big.len());
        c.release();
        assert_eq!(c.out.capacity(), 0);
        let body = c.compress(b"small");
        assert_eq!(lz4_flex::block::decompress(&body.bytes, 5).unwrap(), b"small");
    }

    #[test]
    fn encodes_ex4_byte_for_byte() {
        let group = LogGroup {
            logs: vec![Log {
                time: 1_704_067_200,
                contents: vec![
                    content("reason", "BackOff"),
                    content("message", "Back-off restarting failed container"),
                ],
                time_ns: Some(123_456_789),
            }],
            topic: Some("k8s-event".into()),
            source: Some("10.0.0.1".into()),
            log_tags: vec![LogTag { key: "__hostname__".into(), value: "node-1".into() }],
        };
        let bytes = group.encode_to_vec();
        assert_eq!(hex::encode(&bytes), EX4_BODY);
        assert_eq!(bytes.len(), 126);
        assert_eq!(LogGroup::decode(bytes.as_slice()).unwrap(), group);

        // The streaming encoder writes the same bytes.
        let fields = [("reason", "BackOff"), ("message", "Back-off restarting failed container")];
        let len = log_len(1_704_067_200, fields.iter().map(|(k, v)| content_size(k, v)).sum());
        let mut streamed = Vec::new();
        put_log_start(&mut streamed, 1_704_067_200, len);
        for (k, v) in fields {
            put_content(&mut streamed, k, v);
        }
        put_log_end(&mut streamed, 123_456_789);
        assert_eq!(streamed.len(), framed(len));
        let tags = [("__hostname__".to_owned(), "node-1".to_owned())];
        streamed.extend(group_trailer(Some("k8s-event"), "10.0.0.1", &tags));
        assert_eq!(hex::encode(&streamed), EX4_BODY);
    }

    #[test]
    fn lz4_raw_block_round_trip() {
        let group = LogGroup {
            logs: (0..200)
                .map(|i| Log {
                    time: 1_704_067_200 + i,
                    contents: vec![content("message", &format!("event number {i} of a repetitive stream"))],
                    time_ns: None,
                })
                .collect(),
            topic: None,
            source: Some("node-1".into()),
            log_tags: Vec::new(),
        };
        let mut compressor = Compressor::default();
        let body = compressor.compress(&group.encode_to_vec());
        assert_eq!(body.raw_size, group.encoded_len());
        assert!(body.bytes.len() < body.raw_size / 2, "a repetitive group compresses");
        assert_eq!(body.md5, content_md5(&body.bytes));
        // No size prefix: the server learns the size from x-log-bodyrawsize.
        let raw = lz4_flex::block::decompress(&body.bytes, body.raw_size).unwrap();
        assert_eq!(LogGroup::decode(raw.as_slice()).unwrap(), group);
        // The work buffer is reused for a smaller body.
        let small = compressor.compress(b"hello");
        assert_eq!(lz4_flex::block::decompress(&small.bytes, small.raw_size).unwrap(), b"hello");
    }
}
