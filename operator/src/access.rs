//! What a tenant's ScaledObject may make kedge reach: the addresses its scalers connect to
//! (`--scaler-address-deny-cidrs`) and the namespaces whose Secrets kedge reads
//! (`--restrict-secret-access`). Both are off by default; deploy/README.md says when to turn
//! them on.

use scaler_core::{AddressGuard, Registry, Scaler, ScalerConfig, ScalerError};

/// `--scaler-address-deny-cidrs`, for `kedge run` and `kedge check`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ScalerAddressArgs {
    /// Address ranges scalers may not connect to, as comma-separated CIDRs: e.g. the cloud
    /// metadata service (169.254.169.254/32, fd00:ec2::254/128) and the API server's addresses.
    /// A trigger whose host is in one, or resolves into one, is refused, naming the trigger and
    /// the parameter (Ready=False); names are resolved when the scaler is built and again when
    /// it connects. Empty: no restriction.
    #[arg(
        long = "scaler-address-deny-cidrs",
        env = "KEDGE_SCALER_ADDRESS_DENY_CIDRS",
        value_name = "CIDR[,CIDR...]",
        value_parser = AddressGuard::parse
    )]
    pub deny: Option<AddressGuard>,
}

impl ScalerAddressArgs {
    /// The guard every scaler gets.
    pub fn guard(&self) -> AddressGuard {
        self.deny.clone().unwrap_or_default()
    }
}

/// `--restrict-secret-access`, KEDA's `KEDA_RESTRICT_SECRET_ACCESS`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SecretAccessArgs {
    /// Read and watch Secrets only in the cluster object namespace (KEDA_CLUSTER_OBJECT_NAMESPACE,
    /// default: the pod's), so kedge needs no cluster-wide Secret access: ClusterTriggerAuthentications
    /// work, TriggerAuthentications elsewhere that reference Secrets get Ready=False.
    #[arg(
        long,
        env = "KEDA_RESTRICT_SECRET_ACCESS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_value = "false",
        default_missing_value = "true",
        value_parser = parse_bool,
        action = clap::ArgAction::Set
    )]
    pub restrict_secret_access: bool,
}

/// A boolean as KEDA reads its environment (Go's `strconv.ParseBool`; empty is unset).
fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// Both, as `kedge run` takes them.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AccessArgs {
    /// Where scalers may connect.
    #[command(flatten)]
    pub scaler_addresses: ScalerAddressArgs,
    /// Which Secrets kedge reads.
    #[command(flatten)]
    pub secrets: SecretAccessArgs,
}

/// Builds the scaler of `cfg`. With an active address guard the factory resolves host names,
/// which blocks, so it runs on the blocking pool rather than on an async worker.
pub async fn build_scaler(
    registry: &Registry,
    cfg: &ScalerConfig,
) -> Result<Box<dyn Scaler>, ScalerError> {
    if !cfg.address_guard.is_active() {
        return registry.build(cfg);
    }
    let (registry, owned) = (registry.clone(), cfg.clone());
    tokio::task::spawn_blocking(move || registry.build(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(ScalerError::invalid(
                &cfg.trigger,
                format!("building the scaler failed: {e}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        access: AccessArgs,
    }

    fn parse(args: &[&str]) -> Result<AccessArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("kedge").chain(args.iter().copied())).map(|c| c.access)
    }

    #[test]
    fn off_by_default() {
        let a = parse(&[]).unwrap();
        assert!(!a.scaler_addresses.guard().is_active());
        assert!(!a.secrets.restrict_secret_access);
    }

    #[test]
    fn cidrs_parse_and_malformed_ones_are_refused_at_start() {
        let a = parse(&[
            "--scaler-address-deny-cidrs",
            "169.254.169.254/32,10.96.0.0/12, fd00:ec2::254/128",
            "--restrict-secret-access",
        ])
        .unwrap();
        let shown: Vec<String> = a
            .scaler_addresses
            .guard()
            .ranges()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            ["10.96.0.0/12", "169.254.169.254/32", "fd00:ec2::254/128"]
        );
        assert!(a.secrets.restrict_secret_access);
        for (value, restricted) in [("true", true), ("1", true), ("false", false), ("", false)] {
            let a = parse(&[&format!("--restrict-secret-access={value}")]).unwrap();
            assert_eq!(a.secrets.restrict_secret_access, restricted, "{value:?}");
        }
        assert!(parse(&["--restrict-secret-access=yes"]).is_err());
        for bad in ["169.254.169.254/33", "metadata", "10.0.0.0/8;1.2.3.4/32"] {
            let err = parse(&["--scaler-address-deny-cidrs", bad])
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains("is not a CIDR"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn a_trigger_at_a_denied_address_is_refused_naming_the_parameter() {
        let guard = AddressGuard::parse("127.0.0.0/8,::1/128").unwrap();
        let cfg = ScalerConfig::new("prometheus", 1)
            .with_metadata("serverAddress", "http://localhost:9090")
            .with_metadata("query", "up")
            .with_metadata("threshold", "1")
            .with_address_guard(guard);
        let err = build_scaler(&scalers::registry(), &cfg)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with(
                "triggers[1] (prometheus): parameter \"serverAddress\": its host resolves into "
            ),
            "{err}"
        );
        let open = ScalerConfig {
            address_guard: AddressGuard::default(),
            ..cfg
        };
        assert!(build_scaler(&scalers::registry(), &open).await.is_ok());
    }
}
