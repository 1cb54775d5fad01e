//! Run the fake kube-apiserver by hand:
//! `eventer-fake-apiserver [--token T] [--tls] [--events N] [--rate N --nodes N] [--event-ttl SECONDS]`.
//! Prints a kubeconfig for it, then serves until Ctrl-C. `--events` are loaded before it
//! serves, or with `--rate`, created at that many a second (over `--nodes` nodes, default 500).

use eventer_fake_apiserver::{FakeApiServer, SteadyLoad};

fn main() -> std::io::Result<()> {
    let mut builder = FakeApiServer::builder();
    let mut events = 0usize;
    let mut rate = 0u32;
    let mut nodes = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--token" => builder = builder.token(&args.next().ok_or_else(|| usage("--token needs a value"))?),
            "--tls" => builder = builder.tls(),
            "--event-ttl" => {
                let secs =
                    args.next().and_then(|n| n.parse().ok()).ok_or_else(|| usage("--event-ttl needs seconds"))?;
                builder = builder.event_ttl(std::time::Duration::from_secs(secs));
            }
            "--events" => {
                events = args.next().and_then(|n| n.parse().ok()).ok_or_else(|| usage("--events needs a number"))?;
            }
            "--rate" => {
                rate = args.next().and_then(|n| n.parse().ok()).ok_or_else(|| usage("--rate needs events a second"))?;
            }
            "--nodes" => {
                nodes = args.next().and_then(|n| n.parse().ok()).ok_or_else(|| usage("--nodes needs a number"))?;
            }
            other => return Err(usage(&format!("unknown argument {other}"))),
        }
    }
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        let server = builder.start().await?;
        if rate > 0 {
            server.create_steadily("default", SteadyLoad { total: events, per_second: rate, nodes });
        } else if events > 0 {
            server.bulk_load_events("default", events);
        }
        eprintln!("Serving at {} (Ctrl-C to stop). Kubeconfig:", server.url());
        println!("{}", server.kubeconfig());
        tokio::signal::ctrl_c().await
    })
}

fn usage(problem: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "{problem}\nusage: eventer-fake-apiserver [--token T] [--tls] [--events N] [--rate N --nodes N] [--event-ttl SECONDS]"
        ),
    )
}
