//! DingTalk's `加签`: HMAC-SHA256 over `"<timestamp ms>\n<secret>"`, keyed by the secret,
//! standard Base64, URL-encoded exactly once (by the query builder).

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

/// The raw Base64 signature for `timestamp_ms` (not URL-encoded).
pub(crate) fn signature(secret: &str, timestamp_ms: i64) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The request URL: `webhook?access_token=…[&timestamp=…&sign=…]`. The query builder
/// encodes each value once (`+` → `%2B`, `/` → `%2F`, `=` → `%3D`).
pub(crate) fn request_url(webhook: &Url, token: &str, secret: Option<&str>, timestamp_ms: i64) -> Url {
    let mut url = webhook.clone();
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("access_token", token);
        if let Some(secret) = secret {
            query.append_pair("timestamp", &timestamp_ms.to_string());
            query.append_pair("sign", &signature(secret, timestamp_ms));
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    const TS: i64 = 1_704_067_200_000;

    /// protocols.md A.3, computed with DingtalkChatbot 1.5.7.
    #[test]
    fn reference_vectors() {
        let vectors = [
            (
                "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd",
                "yi4URT1OXtyAyq6aptPEXdKrn3ldIAOAxm1+2qpMBUM=",
                "yi4URT1OXtyAyq6aptPEXdKrn3ldIAOAxm1%2B2qpMBUM%3D",
            ),
            (
                "SECtest",
                "EVK3Sju/EsJhey1kReRG1FXMs+6F5B1G7J+9404iTTo=",
                "EVK3Sju%2FEsJhey1kReRG1FXMs%2B6F5B1G7J%2B9404iTTo%3D",
            ),
            (
                "SEC2",
                "Bv/+T2nvuNsYuMqEw1LwSmc0eicNanp2EjLsE4N8rLw=",
                "Bv%2F%2BT2nvuNsYuMqEw1LwSmc0eicNanp2EjLsE4N8rLw%3D",
            ),
            (
                "SEC5",
                "MgSyJJ5jYb5N/3Uv+INoalm/D7JU87I3Y8ygxPY/SQA=",
                "MgSyJJ5jYb5N%2F3Uv%2BINoalm%2FD7JU87I3Y8ygxPY%2FSQA%3D",
            ),
        ];
        let webhook = Url::parse("https://oapi.dingtalk.com/robot/send").unwrap();
        for (secret, base64, encoded) in vectors {
            assert_eq!(signature(secret, TS), base64, "{secret}");
            let url = request_url(&webhook, "testtoken", Some(secret), TS);
            assert!(url.as_str().ends_with(&format!("&timestamp={TS}&sign={encoded}")), "{url}");
        }
    }

    #[test]
    fn final_url_matches_the_oracle() {
        let webhook = Url::parse("https://oapi.dingtalk.com/robot/send").unwrap();
        let secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";
        assert_eq!(
            request_url(&webhook, "testtoken", Some(secret), TS).as_str(),
            "https://oapi.dingtalk.com/robot/send?access_token=testtoken&timestamp=1704067200000&sign=yi4URT1OXtyAyq6aptPEXdKrn3ldIAOAxm1%2B2qpMBUM%3D"
        );
        assert_eq!(
            request_url(&webhook, "testtoken", None, TS).as_str(),
            "https://oapi.dingtalk.com/robot/send?access_token=testtoken"
        );
    }
}
