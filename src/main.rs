//! `calltrail`: the flight recorder for AI agents' tool calls.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
