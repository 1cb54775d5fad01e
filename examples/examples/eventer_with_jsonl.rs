//! The `eventer` CLI plus the third-party `jsonl:` and `chat:` sinks.
//!
//! `cargo run -p eventer-examples --example eventer_with_jsonl -- --source=file:examples/events.json --sink=jsonl:/tmp/events.jsonl`

fn main() -> std::process::ExitCode {
    let mut registry = eventer_cli::default_registry();
    eventer_examples::register(&mut registry);
    eventer_cli::main_with(registry)
}
