//! Links the `eventer` executable with its relative relocations packed (`DT_RELR`).
//!
//! A position-independent Rust binary carries one relocation per pointer in its read-only
//! data (vtables, string tables). Unpacked they take 1.6 MB that the loader reads at every
//! start; packed they take 22 KB, and eventer idles about 1.5 MiB lower, ASLR kept. glibc
//! reads them from 2.36 on (Debian 12, the image's base), so they are packed when the
//! build machine's glibc is that recent (a binary then runs where it was built).
//! `EVENTER_PACK_RELOCS=0` or `=1` decides instead, for a binary built for another system.

fn main() {
    println!("cargo::rerun-if-env-changed=EVENTER_PACK_RELOCS");
    let env = |key: &str| std::env::var(key).unwrap_or_default();
    let pack = match env("EVENTER_PACK_RELOCS").as_str() {
        "0" => false,
        "1" => true,
        _ => {
            env("CARGO_CFG_TARGET_OS") == "linux"
                && env("CARGO_CFG_TARGET_ENV") == "gnu"
                && env("HOST") == env("TARGET")
                && glibc_reads_packed_relocations()
        }
    };
    if pack {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc is 2.36 or later.
fn glibc_reads_packed_relocations() -> bool {
    let Ok(output) = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (2, 36)
}
