//! The `kedge` command line.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use scaler_core::Registry;

use crate::check::{self, CheckOptions, Inventory};
use crate::resolve::ResolveSettings;

/// kedge: an event-driven autoscaler for Kubernetes that speaks KEDA's API.
///
/// kedge reads KEDA's ScaledObjects, TriggerAuthentications and ClusterTriggerAuthentications
/// (keda.sh/v1alpha1) unchanged, owns one HPA per ScaledObject, serves the external metrics
/// the HPA reads, and scales workloads to and from zero itself.
#[derive(Debug, Parser)]
#[command(name = "kedge", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the operator and the metrics adapter against a cluster (in-cluster or KUBECONFIG).
    Run(Box<crate::run::RunArgs>),
    /// Run kedge on an embedded local cluster, with kubectl access and a live view.
    ///
    /// Never touches a real cluster: starts the embedded API server, installs the CRDs, writes
    /// a kubeconfig for kubectl, applies examples/, runs the operator, and prints what scales
    /// and why.
    #[cfg(feature = "dev")]
    Dev(crate::dev::DevArgs),
    /// Validate ScaledObjects offline and show the HPA kedge would create for each.
    ///
    /// Reads multi-document YAML holding ScaledObjects and what they reference
    /// (TriggerAuthentication, ClusterTriggerAuthentication, Secret, ConfigMap, and the
    /// Deployment/StatefulSet whose container env resolves `<param>FromEnv`). Contacts no
    /// network unless --live is given.
    ///
    /// Exit status: 0 when every ScaledObject is valid, 1 when any is invalid, 2 on usage,
    /// file or YAML errors.
    Check(CheckArgs),
    /// Print the CustomResourceDefinitions kedge serves (KEDA's keda.sh/v1alpha1 CRDs).
    Crd(CrdArgs),
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum Output {
    /// One JSON array element per ScaledObject, in input order.
    Json,
    /// A readable summary.
    #[default]
    Table,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// A YAML file to read; `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    files: Vec<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Also query every trigger once and show its value and activity.
    #[arg(long)]
    live: bool,
    /// Namespace whose Secrets and ConfigMaps ClusterTriggerAuthentications read.
    #[arg(
        long,
        env = "KEDA_CLUSTER_OBJECT_NAMESPACE",
        default_value = "keda",
        value_name = "NAMESPACE"
    )]
    cluster_object_namespace: String,
    /// Timeout of each --live query.
    #[command(flatten)]
    timeout: HttpTimeout,
    /// Address ranges scalers may not connect to (checking them resolves host names).
    #[command(flatten)]
    scaler_addresses: crate::access::ScalerAddressArgs,
}

/// `KEDA_HTTP_DEFAULT_TIMEOUT`: one flag name and one default for every command that reads it.
#[derive(Clone, Copy, Debug, Args)]
pub struct HttpTimeout {
    /// Timeout of calls to data sources, in milliseconds.
    #[arg(
        long = "http-timeout-ms",
        visible_alias = "timeout-ms",
        env = "KEDA_HTTP_DEFAULT_TIMEOUT",
        default_value_t = 3000,
        value_name = "MS"
    )]
    pub millis: u64,
}

impl HttpTimeout {
    /// The timeout.
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.millis)
    }
}

#[derive(Debug, Args)]
struct CrdArgs {
    /// Write one file per CRD into DIR (as deploy/crds/ holds them) instead of printing.
    #[arg(long, value_name = "DIR")]
    write: Option<PathBuf>,
}

/// Parses the command line and runs the command with the built-in scalers.
pub fn main() -> ExitCode {
    main_with_registry(scalers::registry())
}

/// Parses the command line and runs the command with the scalers of `registry`.
///
/// This is how a custom build adds its own scalers: start from `scalers::registry()`, register
/// your factories, and call this from `main`.
///
/// ```no_run
/// fn main() -> std::process::ExitCode {
///     let mut registry = scalers::registry();
///     // registry.register(my_scaler::MyFactory);
///     kedge::cli::main_with_registry(registry)
/// }
/// ```
pub fn main_with_registry(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => crd(args),
        Command::Check(args) => match runtime() {
            Ok(rt) => rt.block_on(check(args, &registry)),
            Err(code) => code,
        },
        Command::Run(args) => match runtime() {
            Ok(rt) => match rt.block_on(crate::run::run(*args, registry)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kedge run: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
        #[cfg(feature = "dev")]
        Command::Dev(args) => match runtime() {
            Ok(rt) => match rt.block_on(crate::dev::run(args, registry)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kedge dev: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(code) => code,
        },
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("kedge: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

fn crd(args: CrdArgs) -> ExitCode {
    match args.write {
        None => {
            print!("{}", crate::crd::crds_yaml());
            ExitCode::SUCCESS
        }
        Some(dir) => match crate::crd::write_dir(&dir) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kedge crd: cannot write {}: {e}", dir.display());
                ExitCode::from(2)
            }
        },
    }
}

async fn check(args: CheckArgs, registry: &Registry) -> ExitCode {
    let mut inventory = Inventory::default();
    for file in &args.files {
        let text = if file == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map(|_| s)
        } else {
            std::fs::read_to_string(file)
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                eprintln!("kedge check: cannot read {file}: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = inventory.add_file(file, &text) {
            eprintln!("kedge check: {e}");
            return ExitCode::from(2);
        }
    }
    let options = CheckOptions {
        live: args.live,
        resolve: ResolveSettings {
            cluster_object_namespace: args.cluster_object_namespace,
        },
        timeout: Some(args.timeout.duration()),
        address_guard: args.scaler_addresses.guard(),
    };
    let reports = check::check(&inventory, registry, &options).await;
    match args.output {
        Output::Json => println!("{}", check::render_json(&reports)),
        Output::Table => print!("{}", check::render_table(&reports)),
    }
    if reports.iter().all(|r| r.valid) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
