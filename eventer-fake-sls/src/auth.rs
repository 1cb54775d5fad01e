//! The fake's signature checks: a second implementation of SLS signing (protocols.md B.4,
//! B.5), on the `ring` crypto library, that works from the request as received. It shares
//! no code with the sink's signer; both are checked against the Python SDK's vectors (B.10).

use axum::http::HeaderMap;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use md5::{Digest as _, Md5};
use ring::{digest, hmac};

/// Uppercase hex MD5, as SLS's `Content-MD5`.
pub fn md5_upper_hex(body: &[u8]) -> String {
    hex::encode_upper(Md5::digest(body))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `(name, value)` of the headers matching `keep`, names lower-cased, values trimmed, sorted.
fn selected(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| keep(name.as_str()))
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("").trim().to_owned()))
        .collect();
    out.sort();
    out
}

fn signed_log_header(name: &str) -> bool {
    (name.starts_with("x-log-") && !name.starts_with("x-log-meta-")) || name.starts_with("x-acs-")
}

/// The v1 string to sign of a request.
pub fn v1_string_to_sign(method: &str, path: &str, query: &[(String, String)], headers: &HeaderMap) -> String {
    let mut lines = vec![
        method.to_owned(),
        header(headers, "content-md5").to_owned(),
        header(headers, "content-type").to_owned(),
        header(headers, "date").to_owned(),
    ];
    lines.extend(selected(headers, signed_log_header).into_iter().map(|(k, v)| format!("{k}:{v}")));
    let mut params: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    params.sort();
    let resource = if params.is_empty() { path.to_owned() } else { format!("{path}?{}", params.join("&")) };
    lines.push(resource);
    lines.join("\n")
}

/// The v1 signature (Base64 HMAC-SHA1) of a request.
pub fn v1_signature(method: &str, path: &str, query: &[(String, String)], headers: &HeaderMap, secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    STANDARD.encode(hmac::sign(&key, v1_string_to_sign(method, path, query, headers).as_bytes()))
}

fn rfc3986(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The v4 signature (hex HMAC-SHA256 with the derived key) of a request, from its
/// `x-log-date` and `x-log-content-sha256` headers.
pub fn v4_signature(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
    secret: &str,
    region: &str,
) -> String {
    let signed = selected(headers, |n| n == "content-type" || n == "host" || signed_log_header(n));
    let mut params: Vec<(String, String)> = query.iter().map(|(k, v)| (k.clone(), rfc3986(v))).collect();
    params.sort();
    let canonical_query: Vec<String> =
        params.iter().map(|(k, v)| if v.is_empty() { k.clone() } else { format!("{k}={v}") }).collect();
    let canonical_headers: String = signed.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_names: Vec<&str> = signed.iter().map(|(k, _)| k.as_str()).collect();
    let canonical_request = [
        method,
        path,
        &canonical_query.join("&"),
        &canonical_headers,
        &signed_names.join(";"),
        header(headers, "x-log-content-sha256"),
    ]
    .join("\n");
    let datetime = header(headers, "x-log-date");
    let date = datetime.get(..8).unwrap_or("");
    let scope = format!("{date}/{region}/sls/aliyun_v4_request");
    let string_to_sign = format!("SLS4-HMAC-SHA256\n{datetime}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let mut key = format!("aliyun_v4{secret}").into_bytes();
    for part in [date, region, "sls", "aliyun_v4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes()).as_ref().to_vec();
    }
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), string_to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue};

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    const DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
    const HOST: &str = "my-project.cn-hangzhou.log.aliyuncs.com";
    const LB: &str = "/logstores/k8s-events/shards/lb";

    #[test]
    fn v1_ex1() {
        let md5 = md5_upper_hex(b"hello");
        assert_eq!(md5, "5D41402ABC4B2A76B9719D911017C592");
        let h = headers(&[
            ("Content-Type", "application/x-protobuf"),
            ("Content-MD5", &md5),
            ("Date", DATE),
            ("Host", HOST),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "5"),
            ("x-log-compresstype", "lz4"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ]);
        assert_eq!(
            v1_string_to_sign("POST", LB, &[], &h),
            "POST\n5D41402ABC4B2A76B9719D911017C592\napplication/x-protobuf\nMon, 01 Jan 2024 00:00:00 GMT\nx-log-apiversion:0.6.0\nx-log-bodyrawsize:5\nx-log-compresstype:lz4\nx-log-signaturemethod:hmac-sha1\n/logstores/k8s-events/shards/lb"
        );
        assert_eq!(v1_signature("POST", LB, &[], &h, "testsecret"), "5SATu8uV5XsLlcyZ8WmCngSbgHY=");
        assert_ne!(v1_signature("POST", LB, &[], &h, "othersecret"), "5SATu8uV5XsLlcyZ8WmCngSbgHY=");
    }

    #[test]
    fn v1_ex2_token_and_query() {
        let h = headers(&[
            ("Content-Type", "application/x-protobuf"),
            ("Content-MD5", &md5_upper_hex(b"hello")),
            ("Date", DATE),
            ("x-acs-security-token", "testtoken"),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "5"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ]);
        let query = [("key".to_owned(), "0123456789abcdef0123456789abcdef".to_owned())];
        let sig = v1_signature("POST", "/logstores/k8s-events/shards/route", &query, &h, "testsecret");
        assert_eq!(sig, "ZwJjadfLNS6VnyCU6MHAFEoNxTw=");
    }

    #[test]
    fn v1_ex3_get_without_body() {
        let h = headers(&[
            ("Date", DATE),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "0"),
            ("x-log-signaturemethod", "hmac-sha1"),
        ]);
        let query = [("size".to_owned(), "100".to_owned()), ("offset".to_owned(), "0".to_owned())];
        assert_eq!(v1_signature("GET", "/logstores", &query, &h, "testsecret"), "Fs6IC6rqrBOnuWC6alDqau4I2A8=");
    }

    #[test]
    fn v1_ex4_put_logs() {
        let raw = hex::decode("0a4f088081c8ac0612110a06726561736f6e12074261636b4f6666122f0a076d65737361676512244261636b2d6f66662072657374617274696e67206661696c656420636f6e7461696e65722515cd5b071a096b38732d6576656e74220831302e302e302e3132160a0c5f5f686f73746e616d655f5f12066e6f64652d31").unwrap();
        let mut lz4 = vec![0xf0, 0x6f];
        lz4.extend_from_slice(&raw);
        for (body, compress, md5, sig) in [
            (&raw, None, "02D41EFB6E75E76DAD5D758D5BEFC24D", "sAE3HKaPVmUepW6jJQmfNyef0Rk="),
            (&lz4, Some("lz4"), "9DF4E561A7BFE649832A2B6C8C40D0C5", "7a34AcXetlwWpp/qO+fUvrUY1ZQ="),
        ] {
            assert_eq!(md5_upper_hex(body), md5);
            let mut pairs = vec![
                ("Content-Type", "application/x-protobuf"),
                ("Content-MD5", md5),
                ("Date", DATE),
                ("x-log-apiversion", "0.6.0"),
                ("x-log-bodyrawsize", "126"),
                ("x-log-signaturemethod", "hmac-sha1"),
            ];
            if let Some(c) = compress {
                pairs.push(("x-log-compresstype", c));
            }
            assert_eq!(v1_signature("POST", LB, &[], &headers(&pairs), "testsecret"), sig);
        }
        // The EX4 body decodes with the fake's own messages.
        let group: crate::proto::LogGroup = prost::Message::decode(raw.as_slice()).unwrap();
        assert_eq!(group.logs[0].get("reason"), Some("BackOff"));
        assert_eq!(group.logs[0].time_ns, Some(123_456_789));
        assert_eq!(lz4_flex::block::decompress(&lz4, 126).unwrap(), raw);
    }

    #[test]
    fn v4_ex6() {
        let sha = sha256_hex(b"hello");
        assert_eq!(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        let h = headers(&[
            ("Content-Type", "application/x-protobuf"),
            ("Host", HOST),
            ("x-log-apiversion", "0.6.0"),
            ("x-log-bodyrawsize", "5"),
            ("x-log-content-sha256", &sha),
            ("x-log-date", "20240101T000000Z"),
            ("User-Agent", "not signed"),
        ]);
        assert_eq!(
            v4_signature("POST", LB, &[], &h, "testsecret", "cn-hangzhou"),
            "b7112b7192e2e33f5ff6e7586f487d7aba88c4fecfefcc3026e9a92983924b27"
        );
        assert_ne!(
            v4_signature("POST", LB, &[], &h, "testsecret", "cn-beijing"),
            "b7112b7192e2e33f5ff6e7586f487d7aba88c4fecfefcc3026e9a92983924b27"
        );
    }
}
