//! The fake refuses what SLS refuses: each check is shown to bite on a request that is
//! valid but for one thing. Requests are written by hand over TCP, signed (v1) with the
//! fake's own `auth` module.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use eventer_fake_sls::{
    FakeSls, auth,
    proto::{Content, Log, LogGroup},
};
use jiff::{SignedDuration, Timestamp};
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const PATH: &str = "/logstores/audit/shards/lb";

struct Request {
    path: String,
    /// The path signed, when it is not `path`.
    signed_path: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    secret: String,
}

impl Request {
    /// A valid, LZ4-compressed request carrying `logs`.
    fn new(logs: Vec<Log>) -> Request {
        let raw = LogGroup { logs, source: Some("node-1".into()), ..LogGroup::default() }.encode_to_vec();
        let body = lz4_flex::block::compress(&raw);
        let headers = [
            ("host", "proj.127.0.0.1".to_owned()),
            ("content-type", "application/x-protobuf".to_owned()),
            ("content-md5", auth::md5_upper_hex(&body)),
            ("date", Timestamp::now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()),
            ("x-log-apiversion", "0.6.0".to_owned()),
            ("x-log-bodyrawsize", raw.len().to_string()),
            ("x-log-compresstype", "lz4".to_owned()),
            ("x-log-signaturemethod", "hmac-sha1".to_owned()),
        ];
        Request {
            path: PATH.into(),
            signed_path: None,
            headers: headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            body,
            secret: "secret".into(),
        }
    }

    fn set(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Send it, signed as key `id`; the status, the `x-log-requestid` and the body.
    async fn send(&self, sls: &FakeSls, id: &str) -> (u16, bool, String) {
        let map: HeaderMap = self
            .headers
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect();
        let signed = self.signed_path.as_deref().unwrap_or(&self.path);
        let signature = auth::v1_signature("POST", signed, &[], &map, &self.secret);
        let path = &self.path;
        let mut head = format!("POST {path} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n", self.body.len());
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("authorization: LOG {id}:{signature}\r\n\r\n"));
        let addr = sls.endpoint().trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&self.body).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        (status, head.to_ascii_lowercase().contains("x-log-requestid: fake"), body.to_owned())
    }
}

fn log_at(time: Timestamp) -> Log {
    Log {
        time: u32::try_from(time.as_second()).unwrap(),
        contents: vec![Content { key: "reason".into(), value: "BackOff".into() }],
        time_ns: Some(1),
    }
}

fn now_logs(n: usize) -> Vec<Log> {
    vec![log_at(Timestamp::now()); n]
}

async fn refused(sls: &FakeSls, request: &Request, id: &str) -> (u16, String) {
    let (status, has_id, body) = request.send(sls, id).await;
    assert!(has_id, "every answer has x-log-requestid");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("error JSON, got {body:?}"));
    assert!(json["errorMessage"].is_string());
    (status, json["errorCode"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn accepts_a_valid_request_and_refuses_each_defect() {
    let sls = FakeSls::start().await;
    sls.add_key("id", "secret");

    let (status, has_id, _) = Request::new(now_logs(3)).send(&sls, "id").await;
    assert_eq!((status, has_id), (200, true));
    let writes = sls.writes();
    assert_eq!((writes.len(), writes[0].project.as_str(), writes[0].log_store.as_str()), (1, "proj", "audit"));
    assert_eq!((writes[0].signature_version, writes[0].compressed), (1, true));
    sls.wait_for_logs(3, std::time::Duration::from_secs(5)).await;

    let eight_days_ago = Timestamp::now() - SignedDuration::from_hours(8 * 24);
    let stale_date =
        (Timestamp::now() - SignedDuration::from_mins(20)).strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let cases = [
        (Request::new(now_logs(1)).set("content-md5", "00000000000000000000000000000000"), 400, "InvalidContentMD5"),
        (Request::new(now_logs(1)).set("x-log-bodyrawsize", "7"), 400, "PostBodyUncompressError"),
        (Request::new(now_logs(1)).set("host", "127.0.0.1"), 400, "InvalidHost"),
        (Request::new(now_logs(1)).set("content-type", "application/json"), 400, "InvalidContentType"),
        (Request::new(now_logs(4097)), 400, "PostBodyTooLarge"),
        (Request::new(vec![log_at(eight_days_ago)]), 400, "InvalidTimestamp"),
        (Request::new(now_logs(1)).set("date", &stale_date), 400, "RequestTimeExpired"),
        (Request { secret: "wrong".into(), ..Request::new(now_logs(1)) }, 401, "SignatureNotMatch"),
    ];
    for (request, status, code) in &cases {
        assert_eq!(refused(&sls, request, "id").await, (*status, (*code).to_owned()), "{code}");
    }
    assert_eq!(refused(&sls, &Request::new(now_logs(1)), "unknown").await, (401, "Unauthorized".to_owned()));
    // An uncompressed body must match x-log-bodyrawsize exactly.
    let body = LogGroup { logs: now_logs(1), ..LogGroup::default() }.encode_to_vec();
    let mut plain = Request::new(now_logs(1))
        .set("content-md5", &auth::md5_upper_hex(&body))
        .set("x-log-bodyrawsize", &body.len().to_string());
    plain.headers.retain(|(k, _)| k != "x-log-compresstype");
    plain.body = body;
    assert_eq!(plain.send(&sls, "id").await.0, 200);

    assert_eq!(sls.writes().len(), 2, "refused requests are not recorded");
    assert_eq!(sls.refusals().len(), cases.len() + 1);
    assert!(sls.refusals().iter().all(|r| !r.injected));
}

/// The Go SDK's producer (kube-eventer's) writes to `/logstores/<logstore>` and names the
/// endpoint's port in `Host`; the path it signs is the one it posts to.
#[tokio::test]
async fn accepts_the_go_sdks_form_of_the_write() {
    let sls = FakeSls::start().await;
    sls.add_key("id", "secret");
    let port = sls.endpoint().rsplit_once(':').unwrap().1.to_owned();
    let go = || Request {
        path: "/logstores/audit".into(),
        ..Request::new(now_logs(2)).set("host", &format!("proj.127.0.0.1:{port}"))
    };

    assert_eq!(go().send(&sls, "id").await.0, 200);
    let writes = sls.writes();
    assert_eq!((writes.len(), writes[0].project.as_str(), writes[0].log_store.as_str()), (1, "proj", "audit"));
    let signed_elsewhere = Request { signed_path: Some(PATH.into()), ..go() };
    assert_eq!(refused(&sls, &signed_elsewhere, "id").await, (401, "SignatureNotMatch".to_owned()));
    let not_a_port = go().set("host", "proj.127.0.0.1:http");
    assert_eq!(refused(&sls, &not_a_port, "id").await, (400, "InvalidHost".to_owned()));
}

#[tokio::test]
async fn refuses_marked_logs_and_large_bodies_and_answers_late_once_stored() {
    let sls = FakeSls::start().await;
    sls.add_key("id", "secret");
    sls.poison("POISON");
    let mut marked = now_logs(3);
    marked[1].contents[0].value = "BackOff POISON".into();
    assert_eq!(refused(&sls, &Request::new(marked), "id").await, (400, "PostBodyInvalid".to_owned()));
    assert_eq!(Request::new(now_logs(3)).send(&sls, "id").await.0, 200, "unmarked logs pass");

    let one = LogGroup { logs: now_logs(1), source: Some("node-1".into()), ..LogGroup::default() }.encoded_len();
    sls.limit_raw_bytes(one * 2);
    assert_eq!(refused(&sls, &Request::new(now_logs(3)), "id").await, (413, "PostBodyTooLarge".to_owned()));
    assert_eq!(Request::new(now_logs(1)).send(&sls, "id").await.0, 200);

    sls.answer_late(1, std::time::Duration::from_secs(30));
    let late = Request::new(now_logs(1));
    tokio::select! {
        _ = late.send(&sls, "id") => panic!("answered before the delay"),
        () = sls.wait_for_logs(5, std::time::Duration::from_secs(10)) => {}
    }
    assert_eq!(sls.writes().len(), 3, "stored before it was answered");
}
