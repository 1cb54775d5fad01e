//! The fake robot answers as DingTalk documents: token, signature, timestamp window,
//! keywords, shape, size, rate limit and block, and injected failures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use eventer_fake_dingtalk::{Failure, FakeDingTalk};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd";

fn client() -> reqwest::Client {
    // Err: a provider is installed already, which is all we need.
    rustls::crypto::ring::default_provider().install_default().ok();
    reqwest::Client::new()
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

fn sign(timestamp: u128, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn text(content: &str) -> Value {
    json!({ "msgtype": "text", "text": { "content": content } })
}

/// POST `body` with the given query string; returns (status, errcode).
async fn post(robot: &FakeDingTalk, query: &str, body: &Value) -> (u16, Option<i64>) {
    let response = client()
        .post(format!("{}?{query}", robot.url()))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let errcode = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| v["errcode"].as_i64());
    (status, errcode)
}

fn signed_query(token: &str, timestamp: u128, sign: &str) -> String {
    let sign: String = url_encode(sign);
    format!("access_token={token}&timestamp={timestamp}&sign={sign}")
}

fn url_encode(s: &str) -> String {
    s.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
}

#[tokio::test]
async fn token_is_checked() {
    let robot = FakeDingTalk::builder().token("right").start().await;
    assert_eq!(post(&robot, "access_token=wrong", &text("x")).await, (200, Some(300001)));
    assert_eq!(post(&robot, "access_token=right", &text("x")).await, (200, Some(0)));
    assert_eq!(robot.messages().len(), 1);
    assert_eq!(robot.messages()[0].text, "x");
}

#[tokio::test]
async fn signature_and_timestamp_window_are_checked() {
    let robot = FakeDingTalk::builder().token("t").secret(SECRET).start().await;
    let ts = now_ms();
    let good = sign(ts, SECRET);
    assert_eq!(post(&robot, &signed_query("t", ts, &good), &text("x")).await.1, Some(0));
    // Unsigned, wrong secret, double-encoded, raw base64 (a `+` decodes to a space).
    assert_eq!(post(&robot, "access_token=t", &text("x")).await.1, Some(310000));
    assert_eq!(post(&robot, &signed_query("t", ts, &sign(ts, "SECother")), &text("x")).await.1, Some(310000));
    let twice = url_encode(&good).replace('%', "%25");
    assert!(twice.contains("%25"), "the vector must need encoding: {good}");
    assert_eq!(post(&robot, &format!("access_token=t&timestamp={ts}&sign={twice}"), &text("x")).await.1, Some(310000));
    let with_plus = (0..).map(|i| ts + i).find(|t| sign(*t, SECRET).contains('+')).unwrap();
    let raw = format!("access_token=t&timestamp={with_plus}&sign={}", sign(with_plus, SECRET));
    assert_eq!(post(&robot, &raw, &text("x")).await.1, Some(310000));
    // Outside the one-hour window, either way.
    for skewed in [ts - 3_700_000, ts + 3_700_000] {
        let query = signed_query("t", skewed, &sign(skewed, SECRET));
        assert_eq!(post(&robot, &query, &text("x")).await.1, Some(310000));
    }
    let inside = ts - 3_500_000;
    assert_eq!(post(&robot, &signed_query("t", inside, &sign(inside, SECRET)), &text("x")).await.1, Some(0));
    assert_eq!(robot.messages().len(), 2);
    let refused = robot.attempts().into_iter().find(|a| a.errcode == Some(310000)).unwrap();
    assert_eq!(refused.errmsg, "sign not match");
}

#[tokio::test]
async fn keyword_shape_and_size_are_checked() {
    let robot = FakeDingTalk::builder().token("t").keyword("k8s").max_bytes(100).start().await;
    let q = "access_token=t";
    assert_eq!(post(&robot, q, &text("no keyword")).await.1, Some(310000));
    assert_eq!(post(&robot, q, &text("k8s alert")).await.1, Some(0));
    let markdown = json!({ "msgtype": "markdown", "markdown": { "title": "k8s", "text": "### hi" },
        "at": { "atMobiles": ["138"], "atUserIds": ["u1"], "isAtAll": true } });
    assert_eq!(post(&robot, q, &markdown).await.1, Some(0));
    for bad in [
        json!({ "msgtype": "text" }),
        json!({ "msgtype": "markdown", "markdown": { "text": "k8s" } }),
        json!({ "msgtype": "link", "link": {} }),
        json!({ "msgtype": "text", "text": { "content": "k8s" }, "at": { "atMobiles": "138" } }),
        json!({ "msgtype": "text", "text": { "content": " " } }),
    ] {
        assert_eq!(post(&robot, q, &bad).await.1, Some(40035), "{bad}");
    }
    assert_eq!(post(&robot, q, &text(&format!("k8s {}", "x".repeat(100)))).await.1, Some(460101));
    let not_json = client().post(format!("{}?{q}", robot.url())).body("k8s").send().await.unwrap();
    let reply: Value = serde_json::from_slice(&not_json.bytes().await.unwrap()).unwrap();
    assert_eq!(reply["errcode"], 40035);
    let got = robot.messages();
    assert_eq!(got.len(), 2);
    assert_eq!((got[1].msgtype.as_str(), got[1].title.as_str()), ("markdown", "k8s"));
    assert_eq!(
        (got[1].at_mobiles.clone(), got[1].at_user_ids.clone(), got[1].at_all),
        (vec!["138".into()], vec!["u1".into()], true)
    );
}

#[tokio::test]
async fn rate_limit_blocks_then_recovers() {
    let robot = FakeDingTalk::builder()
        .token("t")
        .rate_limit(3, Duration::from_millis(400))
        .block(Duration::from_millis(800))
        .start()
        .await;
    let q = "access_token=t";
    for _ in 0..3 {
        assert_eq!(post(&robot, q, &text("x")).await.1, Some(0));
    }
    assert_eq!(post(&robot, q, &text("x")).await.1, Some(130101));
    // After the window but inside the block: still refused.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(post(&robot, q, &text("x")).await.1, Some(130101));
    let blocked_at = robot.attempts()[3].received;
    let wait = Duration::from_millis(850).saturating_sub(blocked_at.elapsed());
    tokio::time::sleep(wait).await;
    assert_eq!(post(&robot, q, &text("x")).await.1, Some(0));
    assert_eq!(robot.errcode_count(130101), 2);
    assert_eq!(robot.messages().len(), 4);
}

#[tokio::test]
async fn failures_are_injected_in_order() {
    let robot = FakeDingTalk::builder().token("t").start().await;
    robot.fail_next(1, Failure::Pass);
    robot.fail_next(2, Failure::Status(502));
    robot.fail_next(1, Failure::NotJson);
    robot.fail_next(1, Failure::Errcode(130101, "send too fast".into()));
    let q = "access_token=t";
    assert_eq!(post(&robot, q, &text("x")).await, (200, Some(0)));
    assert_eq!(post(&robot, q, &text("x")).await, (502, None));
    assert_eq!(post(&robot, q, &text("x")).await, (502, None));
    assert_eq!(post(&robot, q, &text("x")).await, (200, None));
    assert_eq!(post(&robot, q, &text("x")).await, (200, Some(130101)));
    assert_eq!(post(&robot, q, &text("x")).await, (200, Some(0)));
    let statuses: Vec<u16> = robot.attempts().iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 502, 502, 200, 200, 200]);
    assert_eq!(robot.messages().len(), 2);
}

#[tokio::test]
async fn wait_until_wakes_on_arrival() {
    let robot = FakeDingTalk::builder().token("t").start().await;
    let url = robot.url();
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client()
            .post(format!("{url}?access_token=t"))
            .header("content-type", "application/json")
            .body(text("late").to_string())
            .send()
            .await
            .unwrap();
    });
    assert!(robot.wait_until(Duration::from_secs(5), |r| r.messages().len() == 1).await);
    sender.await.unwrap();
    assert!(!robot.wait_until(Duration::from_millis(20), |r| r.messages().len() == 2).await);
}

#[tokio::test]
async fn an_outage_fails_every_request_until_it_ends() {
    let robot = FakeDingTalk::builder().token("t").start().await;
    let q = "access_token=t";
    let outage = Duration::from_secs(1);
    robot.fail_for(outage, Failure::Status(503));
    let started = std::time::Instant::now();
    robot.fail_next(1, Failure::NotJson);
    // Scripted failures first, then the outage however many requests come.
    assert_eq!(post(&robot, q, &text("x")).await, (200, None));
    for _ in 0..3 {
        assert_eq!(post(&robot, q, &text("x")).await, (503, None));
    }
    assert!(started.elapsed() < outage, "too slow to test the outage");
    tokio::time::sleep(outage.saturating_sub(started.elapsed())).await;
    assert_eq!(post(&robot, q, &text("x")).await, (200, Some(0)));
    assert_eq!(robot.messages().len(), 1);
}

#[tokio::test]
async fn peak_rate_counts_the_busiest_window() {
    let robot = FakeDingTalk::builder().token("t").start().await;
    assert_eq!(robot.peak_rate(Duration::from_secs(60)), 0);
    for _ in 0..3 {
        post(&robot, "access_token=t", &text("x")).await;
    }
    let first = robot.attempts();
    let spread = first[2].received - first[0].received;
    tokio::time::sleep(spread + Duration::from_millis(200)).await;
    // Refused requests count too.
    post(&robot, "access_token=wrong", &text("x")).await;
    assert_eq!(robot.peak_rate(Duration::from_secs(60)), 4);
    assert_eq!(robot.peak_rate(spread + Duration::from_millis(100)), 3);
    assert_eq!(robot.peak_rate(Duration::ZERO), 1);
}
