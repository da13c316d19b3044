//! Bearer tokens, authenticated by the cluster through a `TokenReview`
//! (`authentication.k8s.io/v1`), the fallback for callers without a front-proxy certificate.

use async_trait::async_trait;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;

use super::{AuthApiError, UserInfo};

/// Asks the cluster who a bearer token belongs to.
#[async_trait]
pub trait TokenReviewer: Send + Sync + 'static {
    /// The user the token authenticates, `None` if the cluster does not accept it.
    async fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<UserInfo>, AuthApiError>;
}

/// [`TokenReviewer`] through kube-rs: creates a `TokenReview` and reads its status.
#[derive(Clone)]
pub struct KubeTokenReviewer {
    client: kube::Client,
}

impl KubeTokenReviewer {
    /// Reviews tokens with `client` (needs `create` on `tokenreviews`, as `system:auth-delegator`
    /// grants).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl TokenReviewer for KubeTokenReviewer {
    async fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Option<UserInfo>, AuthApiError> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            },
            ..TokenReview::default()
        };
        let api: kube::Api<TokenReview> = kube::Api::all(self.client.clone());
        let created = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthApiError(format!("TokenReview: {e}")))?;
        let Some(status) = created.status else {
            return Ok(None);
        };
        if status.authenticated != Some(true) {
            return Ok(None);
        }
        let Some(user) = status.user else {
            return Ok(None);
        };
        Ok(Some(UserInfo {
            username: user.username.unwrap_or_default(),
            uid: user.uid.unwrap_or_default(),
            groups: user.groups.unwrap_or_default(),
            extra: user.extra.unwrap_or_default(),
        }))
    }
}
