//! The `kedge` binary. See `kedge --help`.

fn main() -> std::process::ExitCode {
    kedge::cli::main()
}
