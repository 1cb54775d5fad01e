//! The fake bot answers as Lark documents (protocols.md A.6): token, signature and its
//! one-hour window, rate limits, size, shape, keywords, and injected failures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eventer_fake_chat::{
    Failure,
    lark::{FakeLark, sign},
};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    // Err: a provider is installed already, which is all we need.
    rustls::crypto::ring::default_provider().install_default().ok();
    reqwest::Client::new()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn text(content: &str) -> Value {
    json!({ "msg_type": "text", "content": { "text": content } })
}

fn signed(mut body: Value, secret: &str, timestamp: u64) -> Value {
    body["timestamp"] = timestamp.to_string().into();
    body["sign"] = sign(timestamp, secret).into();
    body
}

/// POST `body` to `url`; returns (status, code).
async fn post(url: &str, body: &Value) -> (u16, Option<i64>) {
    let request = client().post(url).header("content-type", "application/json").body(body.to_string());
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let reply: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap_or_default();
    (status, reply["code"].as_i64())
}

#[tokio::test]
async fn the_reference_vector_is_lark_s_signature() {
    // protocols.md A.6: ts 1704067200, secret testsecret.
    assert_eq!(sign(1_704_067_200, "testsecret"), "kVrFmsyjEFkiHdX/J2OlfdaTX5OC50rbpkiKESqBqOs=");
    // And the fake accepts that signature scheme for the current time only.
    let bot = FakeLark::builder().token("t").secret("testsecret").start().await;
    assert_eq!(post(&bot.url(), &signed(text("hi"), "testsecret", now())).await, (200, Some(0)));
    assert_eq!(post(&bot.url(), &signed(text("hi"), "testsecret", 1_704_067_200)).await, (200, Some(19021)));
    assert_eq!(post(&bot.url(), &signed(text("hi"), "testsecret", now() - 7200)).await, (200, Some(19021)));
    assert_eq!(post(&bot.url(), &signed(text("hi"), "other", now())).await, (200, Some(19021)));
    assert_eq!(post(&bot.url(), &text("unsigned")).await, (200, Some(19021)));
    assert_eq!(bot.messages().len(), 1);
    assert_eq!(bot.messages()[0].text, "hi");
}

#[tokio::test]
async fn token_shape_size_and_keywords_are_checked() {
    let bot = FakeLark::builder().token("right").keyword("k8s").max_bytes(200).start().await;
    assert_eq!(post(&bot.url().replace("right", "wrong"), &text("k8s")).await, (200, Some(19001)));
    assert_eq!(post(&bot.url(), &text(&format!("k8s {}", "x".repeat(300)))).await, (200, Some(19036)));
    assert_eq!(post(&bot.url(), &text("no keyword")).await, (200, Some(19024)));
    assert_eq!(post(&bot.url(), &json!({ "msg_type": "post", "content": {} })).await, (200, Some(9499)));
    let card = json!({ "msg_type": "interactive", "card": {
        "header": { "title": { "tag": "plain_text", "content": "k8s alert" } },
        "elements": [{ "tag": "div", "text": { "tag": "lark_md", "content": "**BackOff**" } }] } });
    assert_eq!(post(&bot.url(), &card).await, (200, Some(0)));
    let message = &bot.messages()[0];
    assert_eq!(message.msg_type, "interactive");
    assert!(message.text.contains("k8s alert") && message.text.contains("**BackOff**"), "{}", message.text);
}

#[tokio::test]
async fn five_a_second_and_a_hundred_a_minute() {
    let bot = FakeLark::builder().start().await;
    let mut codes = Vec::new();
    for i in 0..6 {
        codes.push(post(&bot.url(), &text(&format!("m{i}"))).await.1);
    }
    assert_eq!(codes, [Some(0), Some(0), Some(0), Some(0), Some(0), Some(11232)]);
    // The per-minute limit, scaled down: 3 a minute.
    let bot = FakeLark::builder().rate_limit(5, 3).start().await;
    for _ in 0..3 {
        assert_eq!(post(&bot.url(), &text("m")).await.1, Some(0));
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post(&bot.url(), &text("m")).await.1, Some(11232));
    assert_eq!(bot.code_count(11232), 1);
    assert_eq!(bot.peak_rate(Duration::from_secs(60)), 4);
}

#[tokio::test]
async fn failures_are_injected_in_order() {
    let bot = FakeLark::builder().start().await;
    bot.fail_next(1, Failure::Status(502));
    bot.fail_next(1, Failure::NotJson);
    bot.fail_next(1, Failure::Code(19022, "ip not allowed".into()));
    assert_eq!(post(&bot.url(), &text("a")).await, (502, None));
    assert_eq!(post(&bot.url(), &text("b")).await, (200, None));
    assert_eq!(post(&bot.url(), &text("c")).await, (200, Some(19022)));
    assert_eq!(post(&bot.url(), &text("d")).await, (200, Some(0)));
    bot.fail_for(Duration::from_secs(60), Failure::Status(503));
    assert_eq!(post(&bot.url(), &text("e")).await, (503, None));
    assert_eq!(bot.messages().len(), 1);
    assert_eq!(bot.attempts().len(), 5);
}
