//! xtask: the Damselfly build, boot and test tool (skeleton; filled in by the boot issue).
#![forbid(unsafe_code)]

fn main() {
    eprintln!("xtask: not yet implemented");
    std::process::exit(2);
}
