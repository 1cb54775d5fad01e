//! `--config` files: YAML, components, options and environment expansion.
#![no_main]

use std::sync::LazyLock;

use eventer_core::Registry;
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(eventer_cli::default_registry);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(message) = eventer_cli::check_config_text(text, &REGISTRY) {
        assert!(!message.contains('\n'), "errors are one line: {message:?}");
    }
});
