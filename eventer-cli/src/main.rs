//! The `eventer` binary.

fn main() -> std::process::ExitCode {
    eventer_cli::main_with(eventer_cli::default_registry())
}
