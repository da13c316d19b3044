//! kedge with kedge's built-in scalers plus the `file-count` scaler of `custom-scaler`.
//!
//! ```text
//! cargo run -p kedge-with-file-count -- check -f examples/custom-scaler/scaledobject.yaml --live
//! ```

fn main() -> std::process::ExitCode {
    let mut registry = scalers::registry();
    registry.register(custom_scaler::FileCountFactory);
    kedge::cli::main_with_registry(registry)
}
