//! Build script of kedge-scalers.
//!
//! With the `external` feature, compiles KEDA's external scaler contract
//! (`proto/externalscaler.proto`) into Rust. It uses protox, a protobuf compiler written in Rust,
//! so building needs no `protoc` on the machine; the proto file stays the one source of truth.

fn main() {
    #[cfg(feature = "external")]
    external_scaler_proto();
}

#[cfg(feature = "external")]
fn external_scaler_proto() {
    const PROTO: &str = "proto/externalscaler.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let fds = match protox::compile([PROTO], ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot compile {PROTO}: {e}"),
    };
    // Server stubs too: tests and custom tools serve the protocol with them.
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)
    {
        panic!("cannot generate Rust code for {PROTO}: {e}");
    }
}
