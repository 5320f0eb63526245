//! quantlens command line: `quantlens [PATH]` opens the window (the `gui` feature);
//! `report`, `check`, `render` and `bench` work headless. The subcommands live in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    quantlens::alloc::keep_freed_memory();
    cli::run()
}
