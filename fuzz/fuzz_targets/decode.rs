//! Event JSON as the apiserver's watch stream, list pages and event files carry it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = eventer_core::decode::event_from_json(text);
    let _ = eventer_core::decode::events_from_document(text);
    let _ = eventer_source_k8s::decode_watch_line(text);
});
