//! Events created at a steady rate while eventer runs: the watch path's load.

use std::{sync::Arc, time::Duration};

use tokio::{task::JoinHandle, time::Instant};

use crate::{
    NewEvent, Shared, now_rfc3339,
    store::{Obj, Resource, Template},
};

/// What [`FakeApiServer::create_steadily`](crate::FakeApiServer::create_steadily) creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SteadyLoad {
    /// Events to create in all.
    pub total: usize,
    /// Events created per second.
    pub per_second: u32,
    /// Nodes the events are spread over (at least 1): every fifth event is about a Node
    /// (NPD's and the node controller's), the others about Pods on those nodes.
    pub nodes: usize,
}

/// How often the creator catches up with its rate: each tick creates what is due, one
/// Event (one revision, one wake-up of the watches) at a time.
const TICK: Duration = Duration::from_millis(1);

const SLOTS: &[&str] = &["@name@", "@object@", "@uid@", "@rv@", "@host@"];

/// The Pod and Node templates of one second (timestamps have seconds precision).
struct Templates {
    second: String,
    pod: Template,
    node: Template,
}

impl Templates {
    fn new(namespace: &str) -> Self {
        let second = now_rfc3339();
        let template = |event: NewEvent| {
            let mut value = event.to_value("@name@".into(), &second);
            value["metadata"]["uid"] = "@uid@".into();
            value["metadata"]["resourceVersion"] = "@rv@".into();
            Template::new(&Obj::new(Resource::Events, &value, 0), SLOTS)
        };
        let mut pod = NewEvent::new(namespace, "@object@").reason("Pulled").message("Successfully pulled image");
        pod.host = "@host@".into();
        let mut node = NewEvent::new(namespace, "@object@")
            .kind("Node")
            .reason("NodeNotReady")
            .message("Node @object@ status is now: NodeNotReady")
            .warning();
        node.host = "@host@".into();
        node.component = "node-controller".into();
        Templates { pod: template(pod), node: template(node), second }
    }
}

pub(crate) fn spawn(shared: Arc<Shared>, namespace: String, load: SteadyLoad) -> JoinHandle<()> {
    tokio::spawn(async move {
        let nodes = load.nodes.max(1);
        let mut templates = Templates::new(&namespace);
        let start = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut created = 0;
        while created < load.total {
            tick.tick().await;
            let due = (start.elapsed().as_secs_f64() * f64::from(load.per_second)) as usize;
            if now_rfc3339() != templates.second {
                templates = Templates::new(&namespace);
            }
            for i in created..due.min(load.total) {
                let host = format!("node-{}", i % nodes);
                let (template, object) = if i % 5 == 0 {
                    (&templates.node, host.clone())
                } else {
                    (&templates.pod, format!("steady-{i:07}"))
                };
                let uid = shared.uid();
                shared.write(|store| {
                    let rv = store.next_rv();
                    let name = format!("{object}.{rv:x}");
                    let rv_text = rv.to_string();
                    store.put(Resource::Events, template.instantiate(rv, &[&name, &object, &uid, &rv_text, &host]));
                });
            }
            created = created.max(due.min(load.total));
        }
    })
}
