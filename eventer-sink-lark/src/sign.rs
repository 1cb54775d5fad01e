//! Lark's signature: `Base64(HMAC-SHA256(key = "<timestamp s>\n<secret>", message = ""))`,
//! sent in the body with the timestamp (seconds, as a string). The roles of key and
//! message are DingTalk's swapped.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The signature for `timestamp` (seconds since the epoch).
pub(crate) fn signature(secret: &str, timestamp: i64) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mac =
        Hmac::<Sha256>::new_from_slice(format!("{timestamp}\n{secret}").as_bytes()).expect("hmac takes any key length");
    STANDARD.encode(mac.finalize().into_bytes())
}

/// `body` (a JSON object) with `timestamp` and `sign` added in front.
pub(crate) fn signed(body: &str, secret: &str, timestamp: i64) -> String {
    let fields = format!(r#"{{"timestamp":"{timestamp}","sign":"{}""#, signature(secret, timestamp));
    match body.strip_prefix('{') {
        Some("}") => format!("{fields}}}"),
        Some(rest) => format!("{fields},{rest}"),
        // Bodies are rendered here as JSON objects; anything else goes as it is.
        None => body.to_owned(),
    }
}

/// What signing adds to a body, at most: the two fields (a 44-character signature, a
/// timestamp of up to 19 digits) and their punctuation.
pub(crate) const SIGN_BYTES: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    /// protocols.md A.6, computed with the official algorithm.
    #[test]
    fn reference_vector() {
        assert_eq!(signature("testsecret", 1_704_067_200), "kVrFmsyjEFkiHdX/J2OlfdaTX5OC50rbpkiKESqBqOs=");
    }

    #[test]
    fn fields_go_first_in_the_body() {
        let body = signed(r#"{"msg_type":"text","content":{"text":"hi"}}"#, "testsecret", 1_704_067_200);
        assert_eq!(
            body,
            r#"{"timestamp":"1704067200","sign":"kVrFmsyjEFkiHdX/J2OlfdaTX5OC50rbpkiKESqBqOs=","msg_type":"text","content":{"text":"hi"}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["content"]["text"], "hi");
        assert!(body.len() - r#"{"msg_type":"text","content":{"text":"hi"}}"#.len() < SIGN_BYTES);
        assert_eq!(signed("{}", "s", 1), format!(r#"{{"timestamp":"1","sign":"{}"}}"#, signature("s", 1)));
    }
}
