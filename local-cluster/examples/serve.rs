//! Run a local cluster until Ctrl-C, like `kedge dev --cluster-only`:
//! `cargo run -p kedge-local-cluster --example serve -- [KUBECONFIG_PATH]`.

#[tokio::main]
async fn main() -> Result<(), local_cluster::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| ".kedge/kubeconfig".to_string());
    local_cluster::run_cluster_only(
        local_cluster::Config::default(),
        std::path::Path::new(&path),
    )
    .await
}
