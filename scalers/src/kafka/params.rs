//! The kafka trigger's parameters, with KEDA's names, defaults, lookup order and errors.

use scaler_core::{ScalerParams, Secret};

use super::lag::{LagRules, OffsetResetPolicy};

/// Parameters of a kafka trigger (KEDA's `kafkaMetadata`).
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct KafkaParams {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    #[param(from(metadata, env))]
    pub bootstrap_servers: Vec<String>,
    /// The consumer group whose lag is measured. kedge never joins it.
    #[param(name = "consumerGroup", from(metadata, env))]
    pub group: String,
    /// The topic to measure. Without it, every topic the group has committed offsets for.
    #[param(from(metadata, env))]
    pub topic: Option<String>,
    /// Only these partitions of `topic`: a list of ids and ranges, e.g. `0,2,5-7`.
    pub partition_limitation: Option<String>,
    /// Target lag per replica.
    #[param(default = 10)]
    pub lag_threshold: i64,
    /// The trigger is active when the total lag is above this.
    #[param(default = 0)]
    pub activation_lag_threshold: i64,
    /// Where a consumer without a committed offset would start: `latest` (counts 1 per such
    /// partition) or `earliest` (counts the whole partition).
    #[param(default = "latest", one_of("latest", "earliest"))]
    pub offset_reset_policy: String,
    /// Let the HPA ask for more replicas than there are partitions.
    #[param(default = false)]
    pub allow_idle_consumers: bool,
    /// Ignore the lag of partitions whose committed offset did not move since the last poll.
    #[param(default = false)]
    pub exclude_persistent_lag: bool,
    /// Count partitions without a committed offset as 0 instead of by `offsetResetPolicy`.
    #[param(default = false)]
    pub scale_to_zero_on_invalid_offset: bool,
    /// Never ask for more replicas than partitions that have lag.
    #[param(default = false)]
    pub limit_to_partitions_with_lag: bool,
    /// Ask only for replica counts that divide the partition count.
    #[param(default = false)]
    pub ensure_even_distribution_of_partitions: bool,
    /// Kafka version (`2.8.0`), used as librdkafka's `broker.version.fallback`: librdkafka
    /// negotiates protocol versions with the broker, so this only matters for brokers older
    /// than 0.10.
    pub version: Option<String>,

    /// `enable` or `disable` TLS.
    #[param(from(metadata, auth), default = "disable", one_of("enable", "disable"))]
    pub tls: String,
    /// Skip verification of the broker's certificate.
    #[param(default = false)]
    pub unsafe_ssl: bool,
    /// PEM CA certificate(s) that sign the broker's certificate.
    #[param(from(auth))]
    pub ca: Option<Secret>,
    /// PEM client certificate.
    #[param(from(auth))]
    pub cert: Option<Secret>,
    /// PEM client key.
    #[param(from(auth))]
    pub key: Option<Secret>,
    /// Password of an encrypted client key.
    #[param(from(auth))]
    pub key_password: Option<Secret>,

    /// SASL mechanism: `none`, `plaintext`, `scram_sha256`, `scram_sha512`, `oauthbearer`
    /// (`gssapi` is recognised and rejected).
    #[param(
        from(metadata, auth),
        one_of(
            "none",
            "plaintext",
            "scram_sha256",
            "scram_sha512",
            "oauthbearer",
            "gssapi"
        )
    )]
    pub sasl: Option<String>,
    /// SASL user name (OAUTHBEARER: the OAuth client id).
    #[param(from(auth))]
    pub username: Option<Secret>,
    /// SASL password (OAUTHBEARER: the OAuth client secret).
    #[param(from(auth))]
    pub password: Option<Secret>,
    /// OAUTHBEARER token provider: `bearer` (client credentials) or `aws_msk_iam` (rejected).
    #[param(from(metadata, auth), one_of("bearer", "aws_msk_iam"))]
    pub sasl_token_provider: Option<String>,
    /// OAUTHBEARER: comma-separated scopes to request.
    #[param(from(auth))]
    pub scopes: Option<String>,
    /// OAUTHBEARER: the token endpoint.
    #[param(name = "oauthTokenEndpointUri", from(auth))]
    pub oauth_token_endpoint_uri: Option<String>,
    /// OAUTHBEARER: SASL extensions, `key=value,key2=value2`.
    #[param(from(auth))]
    pub oauth_extensions: Option<String>,

    /// GSSAPI (not supported): keytab.
    #[param(from(auth))]
    pub keytab: Option<Secret>,
    /// GSSAPI (not supported): Kerberos realm.
    #[param(from(auth))]
    pub realm: Option<String>,
    /// GSSAPI (not supported): krb5.conf contents.
    #[param(from(auth))]
    pub kerberos_config: Option<Secret>,
    /// GSSAPI (not supported): service name.
    #[param(from(auth))]
    pub kerberos_service_name: Option<String>,
    /// GSSAPI (not supported): disable PA-FX-FAST.
    #[param(name = "kerberosDisableFAST", from(auth), default = false)]
    pub kerberos_disable_fast: bool,
    /// AWS MSK IAM (not supported): region.
    pub aws_region: Option<String>,
}

/// The SASL settings after validation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sasl {
    /// No SASL.
    None,
    /// `PLAIN` or `SCRAM-SHA-256/512`: librdkafka's mechanism name, user and password.
    Password {
        /// librdkafka's `sasl.mechanism`.
        mechanism: &'static str,
        /// User name.
        username: Secret,
        /// Password.
        password: Secret,
    },
    /// `OAUTHBEARER` with the OAuth 2 client credentials flow.
    OAuthBearer {
        /// Client id.
        client_id: Secret,
        /// Client secret.
        client_secret: Secret,
        /// Token endpoint.
        token_endpoint: String,
        /// Scopes, space-separated as OAuth wants them.
        scope: String,
        /// SASL extensions, `k=v,k2=v2`.
        extensions: String,
    },
}

impl KafkaParams {
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.lag_threshold <= 0 {
            problems.push("\"lagThreshold\" must be positive number".to_owned());
        }
        if self.activation_lag_threshold < 0 {
            problems.push("\"activationLagThreshold\" must be a non-negative number".to_owned());
        }
        if let Some(limitation) = &self.partition_limitation
            && let Err(e) = parse_partition_limitation(limitation)
        {
            // KEDA's message does not say which parameter it is about.
            problems.push(format!("unable to set param \"partitionLimitation\": {e}"));
        }
        let no_topic = self.topic.is_none();
        if self.allow_idle_consumers && self.limit_to_partitions_with_lag {
            problems.push(
                "allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously"
                    .to_owned(),
            );
        }
        if no_topic && self.limit_to_partitions_with_lag {
            problems.push("topic must be specified when using limitToPartitionsWithLag".to_owned());
        }
        if self.limit_to_partitions_with_lag && self.ensure_even_distribution_of_partitions {
            problems.push(
                "limitToPartitionsWithLag and ensureEvenDistributionOfPartitions cannot be set simultaneously"
                    .to_owned(),
            );
        }
        if no_topic && self.ensure_even_distribution_of_partitions {
            problems.push(
                "topic must be specified when using ensureEvenDistributionOfPartitions".to_owned(),
            );
        }
        if self.tls == "enable" {
            if self.cert.is_some() && self.key.is_none() {
                problems.push("key must be provided with cert".to_owned());
            }
            if self.key.is_some() && self.cert.is_none() {
                problems.push("cert must be provided with key".to_owned());
            }
        }
        if let Err(e) = self.sasl() {
            problems.push(e);
        }
        if let Some(version) = &self.version
            && !is_kafka_version(version)
        {
            problems.push(format!(
                "error parsing kafka version: invalid version `{version}`"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The partitions `partitionLimitation` allows, or `None` for all. Ignored without a
    /// topic, as in KEDA.
    pub fn partition_limitation(&self) -> Option<Vec<i32>> {
        self.topic.as_ref()?;
        self.partition_limitation
            .as_deref()
            .and_then(|s| parse_partition_limitation(s).ok())
    }

    /// The lag rules.
    pub fn lag_rules(&self) -> LagRules {
        LagRules {
            lag_threshold: self.lag_threshold,
            offset_reset_policy: if self.offset_reset_policy == "earliest" {
                OffsetResetPolicy::Earliest
            } else {
                OffsetResetPolicy::Latest
            },
            scale_to_zero_on_invalid_offset: self.scale_to_zero_on_invalid_offset,
            exclude_persistent_lag: self.exclude_persistent_lag,
            allow_idle_consumers: self.allow_idle_consumers,
            limit_to_partitions_with_lag: self.limit_to_partitions_with_lag,
            ensure_even_distribution_of_partitions: self.ensure_even_distribution_of_partitions,
        }
    }

    /// The SASL settings, checked as KEDA's `parseSASL` checks them.
    pub fn sasl(&self) -> Result<Sasl, String> {
        let mode = self.sasl.as_deref().unwrap_or("none");
        let credentials = || -> Result<(Secret, Secret), String> {
            let username = self.username.clone().ok_or("no username given")?;
            let password = self.password.clone().ok_or("no password given")?;
            Ok((username, password))
        };
        match mode {
            "plaintext" | "scram_sha256" | "scram_sha512" => {
                let (username, password) = credentials()?;
                let mechanism = match mode {
                    "plaintext" => "PLAIN",
                    "scram_sha256" => "SCRAM-SHA-256",
                    _ => "SCRAM-SHA-512",
                };
                Ok(Sasl::Password {
                    mechanism,
                    username,
                    password,
                })
            }
            "oauthbearer" => self
                .oauth()
                .map_err(|e| format!("error parsing OAuth token provider configuration: {e}")),
            "gssapi" => {
                // Same checks as KEDA first, so a wrong trigger gets KEDA's message.
                let username = self.username.as_ref().ok_or("no username given")?;
                let _ = username;
                if self.password.is_some() == self.keytab.is_some() {
                    return Err("exactly one of 'password' or 'keytab' must be provided for GSSAPI authentication".to_owned());
                }
                if self.realm.is_none() {
                    return Err("no realm given".to_owned());
                }
                if self.kerberos_config.is_none() {
                    return Err("no Kerberos configuration file (kerberosConfig) given".to_owned());
                }
                Err(
                    "sasl \"gssapi\" (Kerberos) is not supported by kedge's kafka scaler; \
                     use plaintext, scram_sha256, scram_sha512 or oauthbearer"
                        .to_owned(),
                )
            }
            _ => Ok(Sasl::None),
        }
    }

    fn oauth(&self) -> Result<Sasl, String> {
        match self.sasl_token_provider.as_deref().unwrap_or("bearer") {
            "aws_msk_iam" => {
                if self.tls != "enable" {
                    return Err("TLS is required for AWS MSK authentication".to_owned());
                }
                if self.aws_region.is_none() {
                    return Err("no awsRegion given".to_owned());
                }
                Err(
                    "saslTokenProvider \"aws_msk_iam\" is not supported by kedge's kafka scaler; \
                     use saslTokenProvider \"bearer\""
                        .to_owned(),
                )
            }
            _ => {
                let (client_id, client_secret) = (
                    self.username.clone().ok_or("no username given")?,
                    self.password.clone().ok_or("no password given")?,
                );
                let token_endpoint = self
                    .oauth_token_endpoint_uri
                    .clone()
                    .ok_or("no oauth token endpoint uri given")?;
                let scope = self
                    .scopes
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut extensions = Vec::new();
                for ext in self
                    .oauth_extensions
                    .as_deref()
                    .unwrap_or("")
                    .split(',')
                    .filter(|e| !e.trim().is_empty())
                {
                    match ext.split('=').collect::<Vec<_>>()[..] {
                        [k, v] => extensions.push(format!("{}={}", k.trim(), v.trim())),
                        _ => {
                            return Err(
                                "invalid OAuthBearer extension, must be of format key=value"
                                    .to_owned(),
                            );
                        }
                    }
                }
                Ok(Sasl::OAuthBearer {
                    client_id,
                    client_secret,
                    token_endpoint,
                    scope,
                    extensions: extensions.join(","),
                })
            }
        }
    }
}

/// The most partitions `partitionLimitation` may list. A topic has at most a few thousand in
/// practice; the bound keeps a range like `0-2147483647` from allocating gigabytes.
pub const MAX_LIMITED_PARTITIONS: usize = 65_536;

/// Parses `partitionLimitation` (`1,2,5-7`) as KEDA does, with KEDA's messages; a list of more
/// than [`MAX_LIMITED_PARTITIONS`] partitions is an error.
///
/// ```
/// use scalers::kafka::parse_partition_limitation;
/// assert_eq!(parse_partition_limitation("1-4,8,10-12"), Ok(vec![1, 2, 3, 4, 8, 10, 11, 12]));
/// assert_eq!(parse_partition_limitation("a"), Err("invalid partition limitation: a".to_owned()));
/// ```
pub fn parse_partition_limitation(s: &str) -> Result<Vec<i32>, String> {
    let too_many = || {
        format!("invalid partition limitation: lists more than {MAX_LIMITED_PARTITIONS} partitions")
    };
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        if out.len() >= MAX_LIMITED_PARTITIONS {
            return Err(too_many());
        }
        if part.contains('-') {
            let bounds: Vec<&str> = part.split('-').collect();
            let [start, end] = bounds[..] else {
                return Err(format!("invalid partition limitation range: {part}"));
            };
            let parse = |v: &str| {
                v.trim()
                    .parse::<i32>()
                    .map_err(|_| format!("invalid partition limitation: {part}"))
            };
            let (start, end) = (parse(start)?, parse(end)?);
            // Counted before anything is allocated (an empty range when start > end, as in KEDA).
            let len = (i64::from(end) - i64::from(start) + 1).max(0);
            if out.len() as i64 + len > MAX_LIMITED_PARTITIONS as i64 {
                return Err(too_many());
            }
            out.extend(start..=end);
        } else {
            out.push(
                part.parse::<i32>()
                    .map_err(|_| format!("invalid partition limitation: {part}"))?,
            );
        }
    }
    Ok(out)
}

/// Sarama's `ParseKafkaVersion`: `x.y.z`, or `0.x.y.z` for versions before 1.0.
fn is_kafka_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let numeric = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    numeric
        && s.len() >= 5
        && if s.starts_with('0') {
            parts.len() == 4 && parts[0] == "0"
        } else {
            parts.len() == 3
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_versions_as_sarama_parses_them() {
        for ok in ["1.0.0", "2.8.1", "3.7.0", "0.10.2.0", "0.11.0.2"] {
            assert!(is_kafka_version(ok), "{ok}");
        }
        for bad in ["1.2.3.4", "0.10.2", "1.0", "v1.0.0", "1.0.x", "1..0"] {
            assert!(!is_kafka_version(bad), "{bad}");
        }
    }

    #[test]
    fn partition_limitation_is_bounded_before_it_allocates() {
        let too_many = Err(format!(
            "invalid partition limitation: lists more than {MAX_LIMITED_PARTITIONS} partitions"
        ));
        assert_eq!(parse_partition_limitation("0-2147483647"), too_many);
        assert_eq!(
            parse_partition_limitation("-2147483648-2147483647"),
            Err("invalid partition limitation range: -2147483648-2147483647".to_owned())
        );
        assert_eq!(parse_partition_limitation("0-65535,1"), too_many);
        assert_eq!(
            parse_partition_limitation("0-65535").map(|v| v.len()),
            Ok(65_536)
        );
        let many_singles = vec!["1"; MAX_LIMITED_PARTITIONS + 1].join(",");
        assert_eq!(parse_partition_limitation(&many_singles), too_many);
        assert_eq!(parse_partition_limitation("5-3"), Ok(vec![]));
    }

    #[test]
    fn partition_limitation_ranges_and_errors() {
        assert_eq!(parse_partition_limitation("1,2,3,4"), Ok(vec![1, 2, 3, 4]));
        assert_eq!(parse_partition_limitation("1-4"), Ok(vec![1, 2, 3, 4]));
        assert_eq!(parse_partition_limitation(" 1 - 2 , 5"), Ok(vec![1, 2, 5]));
        assert_eq!(
            parse_partition_limitation("a,b,c,d"),
            Err("invalid partition limitation: a".to_owned())
        );
        assert_eq!(
            parse_partition_limitation("1-2-3"),
            Err("invalid partition limitation range: 1-2-3".to_owned())
        );
    }
}
