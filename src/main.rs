//! `calltrail`: the flight recorder for AI agents' tool calls.

mod cli;

/// Records are built on receiver threads and freed on the store writer's thread; glibc's
/// allocator spends half of the ingest CPU on that pattern, mimalloc a small fraction.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
