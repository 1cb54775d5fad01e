//! The `eventer` binary with the webhook sink: the fake apiserver serves the Events and the
//! body template's ConfigMap, a loopback receiver takes the requests.
#![cfg(all(feature = "sink-webhook", feature = "source-k8s"))]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

mod common;

use axum::{
    body::Bytes,
    http::{HeaderMap, Method, StatusCode},
    response::IntoResponse,
};
use common::{Eventer, PATIENCE};
use eventer_fake_apiserver::{FakeApiServer, NewEvent};

/// What the receiver accepted: method, headers, body.
type Accepted = Arc<Mutex<Vec<(Method, HeaderMap, String)>>>;

/// A receiver that answers the statuses in `script` first, then 200.
async fn receiver(script: Vec<u16>) -> (Accepted, Arc<Mutex<usize>>, String) {
    let accepted: Accepted = Arc::default();
    let tries = Arc::new(Mutex::new(0));
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let (a, t) = (accepted.clone(), tries.clone());
    let app = axum::Router::new().fallback(move |method: Method, headers: HeaderMap, body: Bytes| {
        let (accepted, tries, script) = (a.clone(), t.clone(), script.clone());
        async move {
            *tries.lock().unwrap() += 1;
            if let Some(status) = script.lock().unwrap().pop_front() {
                return (StatusCode::from_u16(status).unwrap(), "busy").into_response();
            }
            accepted.lock().unwrap().push((method, headers, String::from_utf8(body.to_vec()).unwrap()));
            (StatusCode::OK, "ok").into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/k8s", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (accepted, tries, url)
}

async fn wait_for(accepted: &Accepted, n: usize) -> Vec<(Method, HeaderMap, String)> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let got = accepted.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the receiver did not get {n} requests: {:?}", accepted.lock().unwrap()))
}

fn source(api: &FakeApiServer) -> String {
    format!("kubernetes:{}?inClusterConfig=false", api.url())
}

const TEMPLATE: &str = r#"{"msg_type":"text","content":{"text":"{{.Type}} {{.InvolvedObject.Kind}} {{.InvolvedObject.Namespace}}/{{.InvolvedObject.Name}} {{.Reason}} x{{.Count}}: {{js .Message}}"}}"#;

#[tokio::test]
async fn configmap_template_bodies_method_headers_and_a_live_change() {
    let api = FakeApiServer::start().await.unwrap();
    api.put_configmap("ops", "webhook-body", &[("content", TEMPLATE)]);
    let (accepted, _, url) = receiver(Vec::new()).await;
    let sink = format!(
        "--sink=webhook:{url}?token=T1&level=Warning&method=POST&header=Content-Type=application/json\
         &header=Authorization=Bearer x=y&custom_body_configmap=webhook-body&custom_body_configmap_namespace=ops"
    );
    let mut eventer = Eventer::spawn(&source(&api), &[&sink]);
    let addr = eventer.server_addr().await;
    // The source's watch and the template's.
    api.wait_for_watchers(2).await;
    api.create_event(NewEvent::new("prod", "web-0").reason("BackOff").message("restarting \"app\" <now>").warning());
    api.create_event(NewEvent::new("prod", "web-1").reason("Started"));
    api.create_event(NewEvent::new("kube-system", "node-1").kind("Node").reason("KernelOops").warning());
    let got = wait_for(&accepted, 2).await;
    let mut bodies: Vec<&str> = got.iter().map(|(_, _, b)| b.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [
            r#"{"msg_type":"text","content":{"text":"Warning Node kube-system/node-1 KernelOops x1: Started container node-1"}}"#,
            r#"{"msg_type":"text","content":{"text":"Warning Pod prod/web-0 BackOff x1: restarting app \u003Cnow\u003E"}}"#,
        ]
    );
    for (method, headers, _) in &got {
        assert_eq!(method, Method::POST);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["authorization"], "Bearer x=y");
        assert!(headers.contains_key("x-eventer-event-id"));
    }

    // A changed template applies without a restart; a broken one keeps the last and fails /readyz.
    api.put_configmap("ops", "webhook-body", &[("content", "{{.Reason")]);
    let (status, body) = common::poll(&addr, "/readyz", |status, _| status == 503).await;
    assert!(body.contains("webhook-template/ops/webhook-body") && body.contains("unclosed action"), "{status} {body}");
    api.create_event(NewEvent::new("prod", "web-2").reason("Unhealthy").warning());
    let got = wait_for(&accepted, 3).await;
    assert!(got[2].2.contains("Warning Pod prod/web-2 Unhealthy"), "the previous template: {}", got[2].2);
    api.put_configmap("ops", "webhook-body", &[("content", "v2 {{.Reason}}")]);
    common::poll(&addr, "/readyz", |status, _| status == 200).await;
    api.create_event(NewEvent::new("prod", "web-3").reason("Failed").warning());
    let got = wait_for(&accepted, 4).await;
    assert_eq!(got[3].2, "v2 Failed");
    let (_, log) = eventer.stop().await;
    assert!(log.contains("Webhook body template changed"), "{log}");
    assert!(!log.contains("token=T1") && !log.contains("x=y"), "{log}");
}

#[tokio::test]
async fn receiver_answering_503_five_times_gets_every_event_once() {
    let api = FakeApiServer::start().await.unwrap();
    let (accepted, tries, url) = receiver(vec![503; 5]).await;
    let sink = format!("--sink=webhook:{url}?method=PUT&template={{{{.InvolvedObject.Name}}}}");
    let eventer = Eventer::spawn(&source(&api), &[&sink]);
    api.wait_for_watchers(1).await;
    for i in 0..4 {
        api.create_event(NewEvent::new("prod", &format!("web-{i}")).warning());
    }
    let got = wait_for(&accepted, 4).await;
    let (_, log) = eventer.stop().await;
    let mut names: Vec<&str> = got.iter().map(|(_, _, b)| b.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["web-0", "web-1", "web-2", "web-3"], "each event exactly once");
    assert_eq!(*tries.lock().unwrap(), 9, "four deliveries and five refused tries");
    assert!(log.contains("webhook answered HTTP 503"), "{log}");
}

#[tokio::test]
async fn a_missing_configmap_exits_2_naming_the_flag_and_the_configmap() {
    let api = FakeApiServer::start().await.unwrap();
    let sink = "--sink=webhook:http://127.0.0.1:1/x?custom_body_configmap=nope&custom_body_configmap_namespace=ops";
    let out = tokio::process::Command::new(common::eventer_bin())
        .args([&format!("--source={}", source(&api)), sink, "--healthz-ip=127.0.0.1", "--healthz-port=0"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("eventer: error: {sink}: ")), "{stderr}");
    assert!(stderr.contains("option custom_body_configmap: configmap ops/nope not found"), "{stderr}");
}

#[tokio::test]
async fn a_template_that_does_not_parse_exits_2() {
    let out = tokio::process::Command::new(common::eventer_bin())
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["--source=file:examples/events.json", "--sink=webhook:http://127.0.0.1:1/x?template={{if .Reason}}"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("option template: the template does not parse: template: body:1: unexpected EOF"),
        "{stderr}"
    );
}
