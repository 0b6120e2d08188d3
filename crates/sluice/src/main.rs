//! The `sluice` binary: command-line entry point.
fn main() {}
