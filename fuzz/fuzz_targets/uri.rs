//! Component URIs (`--source`, `--sink`, `--checkpoint`) through every registered factory.
#![no_main]

use std::sync::LazyLock;

use eventer_core::{BuildContext, Registry, registry::Role, uri::ComponentUri};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(eventer_cli::default_registry);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = eventer_core::uri::redact(text);
    for role in [Role::Source, Role::Sink, Role::Checkpoint] {
        let _ = REGISTRY.redact_uri(role, text);
    }
    let Ok(uri) = text.parse::<ComponentUri>() else { return };
    // Display is redacted and must itself parse.
    let shown = uri.to_string();
    let _ = shown.parse::<ComponentUri>();
    let cx = BuildContext::default();
    let _ = REGISTRY.build_sink(&uri, &cx);
    let _ = REGISTRY.build_source(&uri, &cx);
    let _ = REGISTRY.build_checkpoint(&uri, &cx);
});
