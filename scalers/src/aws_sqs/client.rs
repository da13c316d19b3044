//! SQS clients, one per (region, endpoint, credentials), built lazily on first use.
//!
//! Credentials follow KEDA's AWS authorization: `identityOwner: operator` → kedge's own default
//! credential chain; `awsRoleArn` → that role assumed through STS on top of the default chain;
//! `awsAccessKeyID` + `awsSecretAccessKey` (+ `awsSessionToken`) → those keys. Without any of
//! these, the default chain too: that is what `podIdentity.provider: aws` means (IRSA web
//! identity, EKS Pod Identity, instance profile, env vars). The HTTPS client is hyper with
//! rustls/ring.

use std::fmt;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region, SharedHttpClient};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use scaler_core::Secret;
use tokio::sync::OnceCell;

/// Where credentials come from.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Static keys from the TriggerAuthentication (or env).
    Keys {
        /// `awsAccessKeyID`.
        access_key_id: Secret,
        /// `awsSecretAccessKey`.
        secret_access_key: Secret,
        /// `awsSessionToken`, for temporary keys.
        session_token: Option<Secret>,
    },
    /// `awsRoleArn`, assumed with the default chain's credentials.
    AssumeRole(String),
    /// The default credential chain of kedge's own environment.
    DefaultChain,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The key id is not secret, but it identifies an account; keep it out of logs too.
            Auth::Keys { .. } => f.write_str("Keys(<redacted>)"),
            Auth::AssumeRole(arn) => write!(f, "AssumeRole({arn})"),
            Auth::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// The identity of a shared client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// `awsRegion`.
    pub region: String,
    /// `awsEndpoint`, if any.
    pub endpoint: Option<String>,
    /// Credentials.
    pub auth: Auth,
}

/// A client built on first use (loading credentials may be async: profile files, STS).
pub struct SqsClient {
    key: ClientKey,
    client: OnceCell<aws_sdk_sqs::Client>,
}

impl fmt::Debug for SqsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqsClient")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The HTTPS client every SQS client uses: hyper with rustls/ring and the system's roots. One
/// per process; it pools connections per endpoint.
fn http_client() -> SharedHttpClient {
    static CLIENT: std::sync::LazyLock<SharedHttpClient> = std::sync::LazyLock::new(|| {
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https()
    });
    CLIENT.clone()
}

impl SqsClient {
    /// A client for `key`, not yet built.
    pub fn new(key: ClientKey) -> Self {
        Self {
            key,
            client: OnceCell::new(),
        }
    }

    /// The SDK client, built at the first call.
    pub async fn get(&self) -> &aws_sdk_sqs::Client {
        self.client.get_or_init(|| build(&self.key)).await
    }
}

async fn build(key: &ClientKey) -> aws_sdk_sqs::Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(key.region.clone()))
        .http_client(http_client());
    if let Auth::Keys {
        access_key_id,
        secret_access_key,
        session_token,
    } = &key.auth
    {
        loader = loader.credentials_provider(Credentials::new(
            access_key_id.expose(),
            secret_access_key.expose(),
            session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "kedge-trigger-authentication",
        ));
    }
    let sdk = loader.load().await;
    let mut config = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Auth::AssumeRole(arn) = &key.auth {
        let role = aws_config::sts::AssumeRoleProvider::builder(arn.clone())
            .session_name("kedge")
            .configure(&sdk)
            .build()
            .await;
        config = config.credentials_provider(role);
    }
    if let Some(endpoint) = &key.endpoint {
        config = config.endpoint_url(endpoint.clone());
    }
    aws_sdk_sqs::Client::from_conf(config.build())
}
