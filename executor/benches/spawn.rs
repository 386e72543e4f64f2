//! Spawn-and-complete benchmark (filled in below the API commit).
fn main() {}
