//! `TriggerAuthentication` (namespaced, short names `ta`, `triggerauth`) and
//! `ClusterTriggerAuthentication` (cluster-scoped, short names `cta`, `clustertriggerauth`).
//!
//! Both share [`TriggerAuthenticationSpec`] and [`TriggerAuthenticationStatus`], as in KEDA's
//! `apis/keda/v1alpha1/triggerauthentication_types.go`. Field names are KEDA's JSON names; every
//! optional field is an `Option` omitted when unset.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// TriggerAuthenticationSpec defines the various ways to authenticate.
// kube's `printcolumn(...)` lists repeat `name = `/`type_ = `, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "TriggerAuthentication",
    plural = "triggerauthentications",
    singular = "triggerauthentication",
    namespaced,
    shortname = "ta",
    shortname = "triggerauth",
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "TriggerAuthentication defines how a trigger can authenticate",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        priority = 1,
        json_path = ".status.scaledobjects"
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        priority = 1,
        json_path = ".status.scaledjobs"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TriggerAuthenticationSpec {
    /// Platform identity (workload identity) used instead of secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,

    /// Parameters read from keys of Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_target_ref: Option<Vec<AuthSecretTargetRef>>,

    /// Parameters read from keys of ConfigMaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_target_ref: Option<Vec<AuthConfigMapTargetRef>>,

    /// Parameters read from environment variables of the scale target's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<AuthEnvironment>>,

    /// Parameters read from HashiCorp Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashi_corp_vault: Option<HashiCorpVault>,

    /// Parameters read from Azure Key Vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_key_vault: Option<AzureKeyVault>,

    /// Parameters read from GCP Secret Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcp_secret_manager: Option<GcpSecretManager>,

    /// Parameters read from AWS Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_manager: Option<AwsSecretManager>,

    /// Parameters read from AWS Systems Manager Parameter Store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_parameter_store: Option<AwsParameterStore>,

    /// Parameters read from Akeyless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub akeyless: Option<Akeyless>,

    /// Parameters set to bound tokens of ServiceAccounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_service_account_token: Option<Vec<BoundServiceAccountToken>>,

    /// Parameters read from files of the operator pod (ClusterTriggerAuthentication only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<Vec<AuthFilePath>>,

    /// Parameter set to an OAuth2 access token obtained with client credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
}

/// TriggerAuthenticationStatus defines the observed state of a (Cluster)TriggerAuthentication.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct TriggerAuthenticationStatus {
    /// Comma-separated names of the ScaledObjects using this authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaledobjects: Option<String>,

    /// Comma-separated names of the ScaledJobs using this authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaledjobs: Option<String>,
}

/// ClusterTriggerAuthentication spec: the same fields as [`TriggerAuthenticationSpec`].
///
/// A transparent newtype (it derefs to [`TriggerAuthenticationSpec`]) so that the cluster-scoped
/// kind gets its own derived resource while sharing the spec.
// kube's `printcolumn(...)` lists repeat `name = `/`type_ = `, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ClusterTriggerAuthentication",
    plural = "clustertriggerauthentications",
    singular = "clustertriggerauthentication",
    shortname = "cta",
    shortname = "clustertriggerauth",
    status = "TriggerAuthenticationStatus",
    derive = "PartialEq",
    doc = "ClusterTriggerAuthentication defines how a trigger can authenticate globally",
    printcolumn(
        name = "PodIdentity",
        type_ = "string",
        json_path = ".spec.podIdentity.provider"
    ),
    printcolumn(
        name = "Secret",
        type_ = "string",
        json_path = ".spec.secretTargetRef[*].name"
    ),
    printcolumn(name = "Env", type_ = "string", json_path = ".spec.env[*].name"),
    printcolumn(
        name = "VaultAddress",
        type_ = "string",
        json_path = ".spec.hashiCorpVault.address"
    ),
    printcolumn(
        name = "ScaledObjects",
        type_ = "string",
        priority = 1,
        json_path = ".status.scaledobjects"
    ),
    printcolumn(
        name = "ScaledJobs",
        type_ = "string",
        priority = 1,
        json_path = ".status.scaledjobs"
    )
)]
#[serde(transparent)]
#[schemars(description = "TriggerAuthenticationSpec defines the various ways to authenticate.")]
pub struct ClusterTriggerAuthenticationSpec(pub TriggerAuthenticationSpec);

impl ClusterTriggerAuthenticationSpec {
    /// The shared spec.
    pub fn into_inner(self) -> TriggerAuthenticationSpec {
        self.0
    }
}

impl Deref for ClusterTriggerAuthenticationSpec {
    type Target = TriggerAuthenticationSpec;
    fn deref(&self) -> &TriggerAuthenticationSpec {
        &self.0
    }
}

impl DerefMut for ClusterTriggerAuthenticationSpec {
    fn deref_mut(&mut self) -> &mut TriggerAuthenticationSpec {
        &mut self.0
    }
}

impl From<TriggerAuthenticationSpec> for ClusterTriggerAuthenticationSpec {
    fn from(spec: TriggerAuthenticationSpec) -> Self {
        Self(spec)
    }
}

impl From<ClusterTriggerAuthenticationSpec> for TriggerAuthenticationSpec {
    fn from(spec: ClusterTriggerAuthenticationSpec) -> Self {
        spec.0
    }
}

/// AuthPodIdentity allows users to select the platform native identity mechanism.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthPodIdentity {
    /// Identity provider: azure-workload, gcp, aws, aws-eks or none.
    pub provider: PodIdentityProvider,

    /// Client id of the Azure identity to use. Default the operator's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_id: Option<String>,

    /// Azure tenant id overriding the default; requires identityId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_tenant_id: Option<String>,

    /// Azure authority host overriding the default; requires identityTenantId.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_authority_host: Option<String>,

    /// AWS role ARN to assume; mutually exclusive with identityOwner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,

    /// AWS external ID used when assuming roleArn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "externalID")]
    pub external_id: Option<String>,

    /// Whose AWS identity to use, keda or workload; mutually exclusive with roleArn. Default keda.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::crd::strip_null_from_enum)]
    pub identity_owner: Option<IdentityOwner>,
}

/// PodIdentityProvider contains the list of providers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum PodIdentityProvider {
    // Azure AD Workload Identity.
    #[serde(rename = "azure-workload")]
    AzureWorkload,
    // GCP Workload Identity.
    #[serde(rename = "gcp")]
    Gcp,
    // AWS IRSA / EKS Pod Identity.
    #[serde(rename = "aws")]
    Aws,
    // Deprecated EKS pod identity webhook.
    #[serde(rename = "aws-eks")]
    AwsEks,
    // No pod identity.
    #[default]
    #[serde(rename = "none")]
    None,
}

impl PodIdentityProvider {
    /// The provider as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AzureWorkload => "azure-workload",
            Self::Gcp => "gcp",
            Self::Aws => "aws",
            Self::AwsEks => "aws-eks",
            Self::None => "none",
        }
    }
}

/// Which identity AWS auto discovery uses: keda or the scaled workload.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum IdentityOwner {
    // The KEDA operator's identity.
    #[default]
    Keda,
    // The scaled workload's identity.
    Workload,
}

/// AuthTargetRef is used to authenticate using a reference to a key of a Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthTargetRef {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Name of the Secret or ConfigMap.
    pub name: String,
    /// Key within the Secret or ConfigMap.
    pub key: String,
}

/// AuthSecretTargetRef is used to authenticate using a reference to a secret.
pub type AuthSecretTargetRef = AuthTargetRef;

/// AuthConfigMapTargetRef is used to authenticate using a reference to a config map.
pub type AuthConfigMapTargetRef = AuthTargetRef;

/// AuthEnvironment is used to authenticate using environment variables in the scale target.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthEnvironment {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Name of the environment variable.
    pub name: String,
    /// Container to read it from. Default scaleTargetRef.envSourceContainerName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// HashiCorpVault is used to authenticate using Hashicorp Vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashiCorpVault {
    /// Address of the Vault server.
    pub address: String,

    /// Vault authentication method: token or kubernetes.
    pub authentication: String,

    /// Mapping of Vault secrets to trigger parameters.
    pub secrets: Vec<VaultSecret>,

    /// Vault Enterprise namespace. Default the root namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Credentials for the authentication method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,

    /// Vault role for kubernetes authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,

    /// Mount path of the kubernetes auth method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
}

/// Credential defines the Hashicorp Vault credentials depending on the authentication method.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    /// Vault token for token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,

    /// Path of the service account token file. Default /var/run/secrets/kubernetes.io/serviceaccount/token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,

    /// ServiceAccount whose bound token is used for kubernetes authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// VaultSecret defines the mapping between the path of the secret in Vault to the parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultSecret {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Path of the secret in Vault.
    pub path: String,
    /// Key within the secret.
    pub key: String,
    /// Secret engine type: secretV2, secret or pki. Default generic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Certificate request for the pki engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_data: Option<VaultPkiData>,
}

/// Certificate request parameters for Vault's pki secret engine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultPkiData {
    /// Requested common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    /// Requested subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_names: Option<String>,
    /// Requested IP subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_sans: Option<String>,
    /// Requested URI subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_sans: Option<String>,
    /// Requested other subject alternative names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_sans: Option<String>,
    /// Requested time to live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Requested format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// AzureKeyVault is used to authenticate using Azure Key Vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVault {
    /// URI of the key vault.
    pub vault_uri: String,
    /// Mapping of key vault secrets to trigger parameters.
    pub secrets: Vec<AzureKeyVaultSecret>,
    /// Service principal credentials, when not using pod identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AzureKeyVaultCredentials>,
    /// Pod identity used to access the key vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    /// Azure cloud the key vault lives in. Default AzurePublicCloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<AzureKeyVaultCloudInfo>,
}

/// Azure AD application credentials for Azure Key Vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCredentials {
    /// Azure AD application (client) id.
    pub client_id: String,
    /// Azure AD tenant id.
    pub tenant_id: String,
    /// Secret holding the client secret.
    pub client_secret: SecretValue,
}

/// A key vault secret mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultSecret {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Name of the key vault secret.
    pub name: String,
    /// Version of the secret. Default the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Azure cloud environment of a key vault.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureKeyVaultCloudInfo {
    /// AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud or Private.
    #[serde(rename = "type")]
    pub type_: String,
    /// Key vault resource URL; required when type is Private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "keyVaultResourceURL")]
    pub key_vault_resource_url: Option<String>,
    /// Active Directory endpoint; required when type is Private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_directory_endpoint: Option<String>,
}

/// A value read from a Kubernetes Secret (`valueFrom.secretKeyRef`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValue {
    /// Source of the value.
    pub value_from: ValueFromSecret,
}

/// Source of a value held in a Kubernetes Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFromSecret {
    /// Secret and key holding the value.
    pub secret_key_ref: SecretKeyRef,
}

/// Reference to a key of a Kubernetes Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// GcpSecretManager is used to authenticate using GCP Secret Manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretManager {
    /// Mapping of Secret Manager secrets to trigger parameters.
    pub secrets: Vec<GcpSecretManagerSecret>,
    /// Service account key credentials, when not using pod identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<GcpCredentials>,
    /// Pod identity used to access Secret Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
}

/// GCP service account credentials for Secret Manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpCredentials {
    /// Secret holding the service account key JSON.
    pub client_secret: SecretValue,
}

/// A Secret Manager secret mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcpSecretManagerSecret {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Id of the secret.
    pub id: String,
    /// Version of the secret. Default latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// AwsSecretManager is used to authenticate using AWS Secrets Manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManager {
    /// Mapping of Secrets Manager secrets to trigger parameters.
    pub secrets: Vec<AwsSecretManagerSecret>,
    /// Static AWS credentials, when not using pod identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsCredentials>,
    /// Pod identity used to access Secrets Manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    /// AWS region. Default the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Static AWS credentials read from Kubernetes Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsCredentials {
    /// Secret holding the access key id.
    pub access_key: SecretValue,
    /// Secret holding the secret access key.
    pub access_secret_key: SecretValue,
    /// Secret holding a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<SecretValue>,
}

/// A Secrets Manager secret mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretManagerSecret {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Name of the secret.
    pub name: String,
    /// Version id of the secret. Default the current version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Version stage of the secret. Default AWSCURRENT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_stage: Option<String>,
    /// Key within a JSON secret. Default the whole secret string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

/// AwsParameterStore is used to authenticate using AWS Systems Manager Parameter Store.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsParameterStore {
    /// Mapping of Parameter Store parameters to trigger parameters.
    pub parameters: Vec<AwsParameterStoreParameter>,
    /// Static AWS credentials, when not using pod identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<AwsCredentials>,
    /// Pod identity used to access Parameter Store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_identity: Option<AuthPodIdentity>,
    /// AWS region. Default the operator's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A Parameter Store parameter mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsParameterStoreParameter {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Name of the Parameter Store parameter.
    pub name: String,
    /// Decrypt SecureString parameters. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_decryption: Option<bool>,
}

/// Akeyless is used to authenticate using Akeyless secrets.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Akeyless {
    /// Akeyless gateway URL. Default https://api.akeyless.io.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_url: Option<String>,
    /// Access id; its format selects the authentication method.
    pub access_id: String,
    /// Access key, for access-key authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    /// Kubernetes auth config name, for k8s authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_auth_config_name: Option<String>,
    /// Service account token for k8s authentication. Default the operator's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_service_account_token: Option<String>,
    /// Gateway URL for k8s authentication. Default gatewayUrl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_gateway_url: Option<String>,
    /// Mapping of Akeyless secrets to trigger parameters.
    pub secrets: Vec<AkeylessSecret>,
}

/// An Akeyless secret mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AkeylessSecret {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Path of the secret.
    pub path: String,
    /// Key within a JSON secret. Default the whole secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A bound token of a ServiceAccount mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoundServiceAccountToken {
    /// Trigger parameter to set.
    pub parameter: String,
    /// ServiceAccount (in the ScaledObject's namespace) to request a token for.
    pub service_account_name: String,
}

/// A file of the operator pod mapped to a trigger parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthFilePath {
    /// Trigger parameter to set.
    pub parameter: String,
    /// Path of the file, relative to the operator's --filepath-auth-root-path.
    pub path: String,
}

/// OAuth2 client-credentials configuration whose access token is passed to the trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2 {
    /// OAuth2 grant type: clientCredentials.
    #[serde(rename = "type")]
    pub type_: String,
    /// OAuth2 client id.
    pub client_id: String,
    /// Secret holding the client secret.
    pub client_secret: SecretValue,
    /// Token endpoint URL.
    pub token_url: String,
    /// Scopes to request. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Extra parameters sent to the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url_params: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cluster_spec_is_transparent() {
        let spec: ClusterTriggerAuthenticationSpec = serde_json::from_str(
            r#"{"podIdentity":{"provider":"aws","identityOwner":"workload"}}"#,
        )
        .unwrap();
        let pi = spec.pod_identity.as_ref().unwrap();
        assert_eq!(pi.provider, PodIdentityProvider::Aws);
        assert_eq!(pi.identity_owner, Some(IdentityOwner::Workload));
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"podIdentity":{"provider":"aws","identityOwner":"workload"}}"#
        );
    }

    #[test]
    fn provider_names() {
        for p in [
            PodIdentityProvider::AzureWorkload,
            PodIdentityProvider::Gcp,
            PodIdentityProvider::Aws,
            PodIdentityProvider::AwsEks,
            PodIdentityProvider::None,
        ] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
