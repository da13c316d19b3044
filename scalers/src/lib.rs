//! kedge's built-in scalers.
