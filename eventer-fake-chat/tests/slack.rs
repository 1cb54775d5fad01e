//! The fake webhook answers as Slack documents (protocols.md A.6): the path, archived
//! channels, the rate limit with Retry-After, payload shapes and limits, and injected
//! failures.

use std::time::Duration;

use eventer_fake_chat::{Failure, slack::FakeSlack};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    // Err: a provider is installed already, which is all we need.
    rustls::crypto::ring::default_provider().install_default().ok();
    reqwest::Client::new()
}

/// POST `body` to `url`; returns (status, body, Retry-After).
async fn post(url: &str, body: &str) -> (u16, String, Option<String>) {
    let response =
        client().post(url).header("content-type", "application/json").body(body.to_owned()).send().await.unwrap();
    let status = response.status().as_u16();
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, response.text().await.unwrap(), retry)
}

fn section(text: &str) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

#[tokio::test]
async fn answers_by_path_shape_and_size() {
    let hook = FakeSlack::builder().hook("T1/B1/abc").rate_limit(100, 100.0).start().await;
    let ok = |s: (u16, String, Option<String>)| (s.0, s.1);
    assert_eq!(ok(post(&hook.url(), r#"{"text":"hi"}"#).await), (200, "ok".into()));
    assert_eq!(ok(post(&hook.url().replace("abc", "abd"), r#"{"text":"hi"}"#).await), (404, "no_service".into()));
    assert_eq!(ok(post(&hook.url(), "not json").await), (400, "invalid_payload".into()));
    assert_eq!(ok(post(&hook.url(), r#"{"text":" "}"#).await), (400, "no_text".into()));
    let too_many = json!({ "blocks": vec![section("x"); 51] }).to_string();
    assert_eq!(ok(post(&hook.url(), &too_many).await), (400, "invalid_blocks".into()));
    let too_long = json!({ "blocks": [section(&"x".repeat(3001))] }).to_string();
    assert_eq!(ok(post(&hook.url(), &too_long).await), (400, "invalid_blocks".into()));
    let text = json!({ "text": "x".repeat(40_001) }).to_string();
    assert_eq!(ok(post(&hook.url(), &text).await), (400, "msg_too_long".into()));
    let blocks = json!({ "text": "fallback", "blocks": [section("*one*"), section("two")] }).to_string();
    assert_eq!(ok(post(&hook.url(), &blocks).await), (200, "ok".into()));
    let messages = hook.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].blocks, ["*one*", "two"]);
    assert_eq!((messages[1].text.as_str(), messages[1].shown()), ("fallback", "*one*\ntwo".to_owned()));

    let archived = FakeSlack::builder().archived().start().await;
    assert_eq!(ok(post(&archived.url(), r#"{"text":"hi"}"#).await), (410, "channel_is_archived".into()));
}

#[tokio::test]
async fn about_one_a_second_with_short_bursts() {
    let hook = FakeSlack::builder().start().await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(post(&hook.url(), r#"{"text":"hi"}"#).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|s| s.0).collect();
    assert_eq!(codes, [200, 200, 200, 200, 429], "a burst of 4, then rate_limited");
    assert_eq!((statuses[4].1.as_str(), statuses[4].2.as_deref()), ("rate_limited", Some("1")));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&hook.url(), r#"{"text":"hi"}"#).await.0, 200, "refilled at one a second");
    assert_eq!(hook.status_count(429), 1);
}

#[tokio::test]
async fn failures_are_injected_in_order() {
    let hook = FakeSlack::builder().start().await;
    hook.fail_next(1, Failure::Status(500));
    hook.fail_next(1, Failure::Code(403, "action_prohibited".into()));
    assert_eq!(post(&hook.url(), r#"{"text":"a"}"#).await.0, 500);
    assert_eq!(post(&hook.url(), r#"{"text":"b"}"#).await.1, "action_prohibited");
    assert_eq!(post(&hook.url(), r#"{"text":"c"}"#).await.0, 200);
    assert_eq!(hook.messages().len(), 1);
    assert!(hook.wait_until(Duration::from_millis(10), |h| h.attempts().len() == 3).await);
}
