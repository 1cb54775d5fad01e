//! The PutLogs body: SLS's proto2 `LogGroup` (`aliyun/log/log_logs.proto`), derived by hand.
//!
//! proto2 `required` fields are plain (always emitted) fields here; `Log.Time_ns` is a
//! `fixed32`, not a varint.

use prost::{
    bytes::BufMut as _,
    encoding::{WireType, encode_key, encode_varint, encoded_len_varint},
};

use crate::sign::content_md5;

/// One `Key`/`Value` pair of a [`Log`] (`Log.Content`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogContent {
    /// Field name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Field value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// One log: a timestamp and its fields.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Log {
    /// `__time__`, Unix seconds.
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    /// The fields, in order.
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<LogContent>,
    /// The nanosecond part of the time (0..1e9).
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// A tag shared by every log of a group (`__tag__:<key>`).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogTag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// The body of one PutLogs request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogGroup {
    /// The logs.
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    /// `__topic__`.
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    /// `__source__`.
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    /// `__tag__:<key>` for each tag.
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// A log group encoded and compressed for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The LZ4 raw block (no frame, no size prefix), as sent.
    pub bytes: Vec<u8>,
    /// Size of the protobuf before compression (`x-log-bodyrawsize`).
    pub raw_size: usize,
    /// `Content-MD5` of [`Body::bytes`].
    pub md5: String,
}

impl Body {
    /// Compress an encoded [`LogGroup`].
    pub fn compress(raw: &[u8]) -> Body {
        let bytes = lz4_flex::block::compress(raw);
        Body { md5: content_md5(&bytes), raw_size: raw.len(), bytes }
    }
}

// Streaming encoding: the bytes prost produces for a `LogGroup`, written log by log from
// borrowed fields, without building the owned messages (one allocation per field would
// cost more than everything else the sink does per event). Checked byte for byte against
// prost's encoding of the equivalent messages in the tests.

/// Encoded size of a length-delimited field holding `len` bytes, tag included (tags < 16).
fn delimited(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn content_len(key: &str, value: &str) -> usize {
    delimited(key.len()) + delimited(value.len())
}

/// Encoded size of a [`Log`] with these fields, without its own tag and length prefix.
pub(crate) fn log_len(time: u32, fields: &[(&str, &str)]) -> usize {
    let contents: usize = fields.iter().map(|(k, v)| delimited(content_len(k, v))).sum();
    1 + encoded_len_varint(u64::from(time)) + contents + 1 + 4
}

/// Size of one `LogGroup.Logs` entry whose log is `log_len` bytes.
pub(crate) fn framed(log_len: usize) -> usize {
    delimited(log_len)
}

fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.put_slice(s.as_bytes());
}

/// Append one `LogGroup.Logs` entry; `len` is [`log_len`] of the same arguments.
pub(crate) fn put_log(buf: &mut Vec<u8>, time: u32, time_ns: u32, fields: &[(&str, &str)], len: usize) {
    encode_key(1, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    encode_key(1, WireType::Varint, buf);
    encode_varint(u64::from(time), buf);
    for (key, value) in fields {
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(content_len(key, value) as u64, buf);
        put_str(1, key, buf);
        put_str(2, value, buf);
    }
    encode_key(4, WireType::ThirtyTwoBit, buf);
    buf.put_u32_le(time_ns);
}

/// The `LogGroup` fields after the logs (topic, source, tags), as prost orders them.
pub(crate) fn group_trailer(topic: Option<&str>, source: &str, tags: &[(String, String)]) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(topic) = topic {
        put_str(3, topic, &mut buf);
    }
    put_str(4, source, &mut buf);
    for (key, value) in tags {
        encode_key(6, WireType::LengthDelimited, &mut buf);
        encode_varint(content_len(key, value) as u64, &mut buf);
        put_str(1, key, &mut buf);
        put_str(2, value, &mut buf);
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
        let len = log_len(1_704_067_200, &fields);
        let mut streamed = Vec::new();
        put_log(&mut streamed, 1_704_067_200, 123_456_789, &fields, len);
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
        let body = Body::compress(&group.encode_to_vec());
        assert_eq!(body.raw_size, group.encoded_len());
        assert!(body.bytes.len() < body.raw_size / 2, "a repetitive group compresses");
        assert_eq!(body.md5, content_md5(&body.bytes));
        // No size prefix: the server learns the size from x-log-bodyrawsize.
        let raw = lz4_flex::block::decompress(&body.bytes, body.raw_size).unwrap();
        assert_eq!(LogGroup::decode(raw.as_slice()).unwrap(), group);
    }
}
