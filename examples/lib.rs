//! Runnable examples of tether; see the `[[example]]` targets.

pub mod rows;

/// Prints `usage` and exits 0 when the command line asks for help
/// (`--help` or `-h` anywhere), before the example parses anything else:
/// every example a user runs explains its options.
pub fn help(usage: &str) {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{}", usage.trim());
        std::process::exit(0);
    }
}
