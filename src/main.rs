//! The `polyarch` command: parses flags, picks the runtime, renders errors and sets the exit code.

fn main() {
    std::process::exit(polyarch::cli::main());
}
