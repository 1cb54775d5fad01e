//! The `eventer` binary.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // jemalloc hands freed pages back only when the arena is used again: after a burst of
    // events an idle eventer would keep its peak. The background thread purges them.
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("eventer: warning: jemalloc's background thread did not start: {e}");
    }
    eventer_cli::main_with(eventer_cli::default_registry())
}
