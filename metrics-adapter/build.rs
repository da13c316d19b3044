//! Build script of kedge-metrics-adapter: compiles the replica-to-leader gRPC contract
//! (`proto/metrics.proto`) into Rust with protox, a protobuf compiler written in Rust, so
//! building needs no `protoc` on the machine.

fn main() {
    const PROTO: &str = "proto/metrics.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let fds = match protox::compile([PROTO], ["proto"]) {
        Ok(fds) => fds,
        Err(e) => panic!("cannot compile {PROTO}: {e}"),
    };
    // No tonic transport: both ends run on our own rustls (TLS 1.3, mutual authentication).
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)
    {
        panic!("cannot generate Rust code for {PROTO}: {e}");
    }
}
