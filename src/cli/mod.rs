//! The command line.

pub mod ipvsadm_format;

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    0
}
