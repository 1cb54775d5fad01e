//! Request signing: v1 (`LOG <id>:<hmac-sha1>`) and v4 (`SLS4-HMAC-SHA256`), per
//! protocols.md B.4 and B.5, checked against the official Python SDK's output (B.10).

use std::{collections::BTreeMap, fmt};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use md5::{Digest as _, Md5};
use serde::Serialize;
use sha1::Sha1;
use sha2::Sha256;

use crate::credentials::Credentials;

/// `x-log-content-sha256` of an empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// HMAC-SHA1 over a canonical string (`Authorization: LOG <id>:<signature>`).
    V1,
    /// SLS4-HMAC-SHA256 with a per-day, per-region derived key, as the current SDKs and
    /// kube-eventer use (needs the region).
    #[default]
    V4,
}

eventer_core::impl_deserialize_from_str!(SignatureVersion);

impl std::str::FromStr for SignatureVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "v1" | "1" => Ok(SignatureVersion::V1),
            "v4" | "4" => Ok(SignatureVersion::V4),
            _ => Err(format!("invalid signature version `{s}` (expected v1 or v4)")),
        }
    }
}

/// An HTTP request as SLS signs it: method, path, query and headers. Header names are
/// lower-case; [`sign`] adds the date, token and `authorization` headers.
///
/// Its `Debug` hides `authorization` and `x-acs-security-token`.
#[derive(Clone, PartialEq, Eq)]
pub struct SignableRequest {
    /// `GET`, `POST`...
    pub(crate) method: &'static str,
    /// The path, e.g. `/logstores/k8s-events/shards/lb`.
    pub(crate) path: String,
    /// Query parameters, unencoded.
    pub(crate) query: Vec<(String, String)>,
    /// Headers by lower-case name.
    pub(crate) headers: BTreeMap<String, String>,
}

impl fmt::Debug for SignableRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let hidden = k == "authorization" || k == "x-acs-security-token";
                (k.as_str(), if hidden { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("SignableRequest")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("headers", &headers)
            .finish()
    }
}

impl SignableRequest {
    /// A request with no headers yet.
    pub fn new(method: &'static str, path: impl Into<String>) -> Self {
        SignableRequest { method, path: path.into(), query: Vec::new(), headers: BTreeMap::new() }
    }

    /// Set a header (the name is lower-cased).
    pub fn header(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.headers.insert(name.to_ascii_lowercase(), value.into());
        self
    }
}

/// `Content-MD5` as SLS wants it: uppercase hex, not Base64.
pub fn content_md5(body: &[u8]) -> String {
    hex::encode_upper(Md5::digest(body))
}

/// Sign `request` (whose `body` is what is sent, compressed or not) at time `now`: add the
/// date headers, the STS token if any, and `authorization`. `region` is used by v4 only.
pub fn sign(
    request: &mut SignableRequest,
    body: &[u8],
    version: SignatureVersion,
    region: &str,
    credentials: &Credentials,
    now: Timestamp,
) {
    if let Some(token) = credentials.security_token() {
        request.header("x-acs-security-token", token);
    }
    let authorization = match version {
        SignatureVersion::V1 => {
            request.header("x-log-signaturemethod", "hmac-sha1");
            request.header("date", now.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string());
            let mut mac = hmac_sha1(credentials.access_key_secret().as_bytes());
            mac.update(v1_string_to_sign(request).as_bytes());
            format!("LOG {}:{}", credentials.access_key_id(), BASE64.encode(mac.finalize().into_bytes()))
        }
        SignatureVersion::V4 => {
            let sha = if body.is_empty() { EMPTY_SHA256.to_owned() } else { hex::encode(Sha256::digest(body)) };
            let time = now.strftime("%Y%m%dT%H%M%SZ").to_string();
            request.header("x-log-content-sha256", sha);
            request.header("x-log-date", time.clone());
            let date = &time[..8];
            let scope = format!("{date}/{region}/sls/aliyun_v4_request");
            let string_to_sign = format!(
                "SLS4-HMAC-SHA256\n{time}\n{scope}\n{}",
                hex::encode(Sha256::digest(v4_canonical_request(request).as_bytes()))
            );
            let mut key = hmac256(format!("aliyun_v4{}", credentials.access_key_secret()).as_bytes(), date);
            for part in [region, "sls", "aliyun_v4_request"] {
                key = hmac256(&key, part);
            }
            format!(
                "SLS4-HMAC-SHA256 Credential={}/{scope},Signature={}",
                credentials.access_key_id(),
                hex::encode(hmac256(&key, &string_to_sign))
            )
        }
    };
    request.header("authorization", authorization);
}

fn hmac_sha1(key: &[u8]) -> Hmac<Sha1> {
    Hmac::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn hmac256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Headers SLS signs: `x-log-*` (bar `x-log-meta-*`, which the Python SDK skips) and `x-acs-*`.
fn is_log_header(name: &str) -> bool {
    (name.starts_with("x-log-") && !name.starts_with("x-log-meta-")) || name.starts_with("x-acs-")
}

fn v1_string_to_sign(request: &SignableRequest) -> String {
    let h = |name: &str| request.headers.get(name).map_or("", String::as_str);
    let mut s = format!("{}\n{}\n{}\n{}\n", request.method, h("content-md5"), h("content-type"), h("date"));
    for (name, value) in request.headers.iter().filter(|(name, _)| is_log_header(name)) {
        s.push_str(name);
        s.push(':');
        s.push_str(value.trim());
        s.push('\n');
    }
    s.push_str(&request.path);
    // v1 sorts the parameters and does not URL-encode them.
    let mut query: Vec<&(String, String)> = request.query.iter().collect();
    query.sort();
    for (i, (k, v)) in query.into_iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(v);
    }
    s
}

fn v4_canonical_request(request: &SignableRequest) -> String {
    let mut query: Vec<(&str, String)> = request.query.iter().map(|(k, v)| (k.as_str(), uri_encode(v))).collect();
    query.sort();
    let query: Vec<String> =
        query.into_iter().map(|(k, v)| if v.is_empty() { k.to_owned() } else { format!("{k}={v}") }).collect();
    let signed: Vec<(&String, &String)> = request
        .headers
        .iter()
        .filter(|(name, _)| *name == "content-type" || *name == "host" || is_log_header(name))
        .collect();
    let mut s = format!("{}\n{}\n{}\n", request.method, request.path, query.join("&"));
    for (name, value) in &signed {
        s.push_str(name);
        s.push(':');
        s.push_str(value.trim());
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&signed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";"));
    s.push('\n');
    s.push_str(request.headers.get("x-log-content-sha256").map_or(EMPTY_SHA256, String::as_str));
    s
}

/// RFC 3986 encoding: everything but `A-Za-z0-9-_.~` becomes `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "my-project.cn-hangzhou.log.aliyuncs.com";
    /// B.10 EX4's uncompressed body.
    const EX4_BODY: &str = "0a4f088081c8ac0612110a06726561736f6e12074261636b4f6666122f0a076d65737361676512244261636b2d6f66662072657374617274696e67206661696c656420636f6e7461696e65722515cd5b071a096b38732d6576656e74220831302e302e302e3132160a0c5f5f686f73746e616d655f5f12066e6f64652d31";

    fn jan1() -> Timestamp {
        "2024-01-01T00:00:00Z".parse().unwrap()
    }

    fn test_credentials() -> Credentials {
        Credentials::new("testid", "testsecret")
    }

    /// The headers the Python SDK's `put_logs` sets before signing.
    fn put_logs(path: &str, body: &[u8], raw_size: usize, lz4: bool) -> SignableRequest {
        let mut r = SignableRequest::new("POST", path);
        r.header("Content-Type", "application/x-protobuf")
            .header("x-log-apiversion", "0.6.0")
            .header("x-log-bodyrawsize", raw_size.to_string())
            .header("Host", HOST)
            .header("Content-MD5", content_md5(body));
        if lz4 {
            r.header("x-log-compresstype", "lz4");
        }
        r
    }

    #[test]
    fn v1_ex1() {
        let mut r = put_logs("/logstores/k8s-events/shards/lb", b"hello", 5, true);
        assert_eq!(r.headers["content-md5"], "5D41402ABC4B2A76B9719D911017C592");
        sign(&mut r, b"hello", SignatureVersion::V1, "", &test_credentials(), jan1());
        assert_eq!(
            v1_string_to_sign(&r),
            "POST\n5D41402ABC4B2A76B9719D911017C592\napplication/x-protobuf\nMon, 01 Jan 2024 00:00:00 GMT\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:5\nx-log-compresstype:lz4\nx-log-signaturemethod:hmac-sha1\n/logstores/k8s-events/shards/lb"
        );
        assert_eq!(r.headers["authorization"], "LOG testid:5SATu8uV5XsLlcyZ8WmCngSbgHY=");
        assert_eq!(r.headers["date"], "Mon, 01 Jan 2024 00:00:00 GMT");
    }

    #[test]
    fn v1_ex2_token_and_query() {
        let mut r = put_logs("/logstores/k8s-events/shards/route", b"hello", 5, false);
        r.query.push(("key".into(), "0123456789abcdef0123456789abcdef".into()));
        let creds = Credentials::sts("testid", "testsecret", "testtoken", jan1());
        sign(&mut r, b"hello", SignatureVersion::V1, "", &creds, jan1());
        assert_eq!(
            v1_string_to_sign(&r),
            "POST\n5D41402ABC4B2A76B9719D911017C592\napplication/x-protobuf\nMon, 01 Jan 2024 00:00:00 GMT\nx-acs-security-token:testtoken\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:5\nx-log-signaturemethod:hmac-sha1\n/logstores/k8s-events/shards/route?key=0123456789abcdef0123456789abcdef"
        );
        assert_eq!(r.headers["authorization"], "LOG testid:ZwJjadfLNS6VnyCU6MHAFEoNxTw=");
        assert_eq!(r.headers["x-acs-security-token"], "testtoken");
        let shown = format!("{r:?}");
        assert!(!shown.contains("testtoken") && !shown.contains("ZwJjadf"), "{shown}");
    }

    #[test]
    fn v1_ex3_no_body_sorted_query() {
        let mut r = SignableRequest::new("GET", "/logstores");
        r.header("x-log-apiversion", "0.6.0").header("x-log-bodyrawsize", "0").header("Host", HOST);
        r.query = vec![("size".into(), "100".into()), ("offset".into(), "0".into())];
        sign(&mut r, b"", SignatureVersion::V1, "", &test_credentials(), jan1());
        assert!(v1_string_to_sign(&r).starts_with("GET\n\n\nMon, 01 Jan 2024 00:00:00 GMT\n"));
        assert!(v1_string_to_sign(&r).ends_with("\n/logstores?offset=0&size=100"));
        assert_eq!(r.headers["authorization"], "LOG testid:Fs6IC6rqrBOnuWC6alDqau4I2A8=");
    }

    #[test]
    fn v1_ex4_put_logs_uncompressed_and_lz4() {
        let raw = hex::decode(EX4_BODY).unwrap();
        let mut r = put_logs("/logstores/k8s-events/shards/lb", &raw, 126, false);
        assert_eq!(r.headers["content-md5"], "02D41EFB6E75E76DAD5D758D5BEFC24D");
        sign(&mut r, &raw, SignatureVersion::V1, "", &test_credentials(), jan1());
        assert_eq!(r.headers["authorization"], "LOG testid:sAE3HKaPVmUepW6jJQmfNyef0Rk=");

        // The SDK's lz4 body: one literal run (token 0xF0, extra length 0x6F) then the bytes.
        let mut lz4 = vec![0xf0, 0x6f];
        lz4.extend_from_slice(&raw);
        let mut r = put_logs("/logstores/k8s-events/shards/lb", &lz4, 126, true);
        assert_eq!(r.headers["content-md5"], "9DF4E561A7BFE649832A2B6C8C40D0C5");
        sign(&mut r, &lz4, SignatureVersion::V1, "", &test_credentials(), jan1());
        assert_eq!(r.headers["authorization"], "LOG testid:7a34AcXetlwWpp/qO+fUvrUY1ZQ=");
    }

    #[test]
    fn v4_ex6() {
        let mut r = SignableRequest::new("POST", "/logstores/k8s-events/shards/lb");
        r.header("Content-Type", "application/x-protobuf")
            .header("Host", HOST)
            .header("x-log-apiversion", "0.6.0")
            .header("x-log-bodyrawsize", "5");
        sign(&mut r, b"hello", SignatureVersion::V4, "cn-hangzhou", &test_credentials(), jan1());
        assert_eq!(
            r.headers["x-log-content-sha256"],
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(r.headers["x-log-date"], "20240101T000000Z");
        assert_eq!(
            r.headers["authorization"],
            "SLS4-HMAC-SHA256 Credential=testid/20240101/cn-hangzhou/sls/aliyun_v4_request,Signature=b7112b7192e2e33f5ff6e7586f487d7aba88c4fecfefcc3026e9a92983924b27"
        );
        assert!(!r.headers.contains_key("date"), "v4 signs x-log-date, not Date");
    }

    #[test]
    fn v4_query_is_rfc3986_encoded() {
        let mut r = SignableRequest::new("GET", "/logstores");
        r.query = vec![("q".into(), "a b/c~".into()), ("empty".into(), String::new())];
        r.header("x-log-content-sha256", EMPTY_SHA256);
        assert!(v4_canonical_request(&r).starts_with("GET\n/logstores\nempty&q=a%20b%2Fc~\n"));
    }

    #[test]
    fn signature_versions_parse() {
        assert_eq!("v1".parse::<SignatureVersion>().unwrap(), SignatureVersion::V1);
        assert_eq!("V4".parse::<SignatureVersion>().unwrap(), SignatureVersion::V4);
        assert_eq!(SignatureVersion::default(), SignatureVersion::V4);
        assert!("v2".parse::<SignatureVersion>().unwrap_err().contains("expected v1 or v4"));
    }
}
