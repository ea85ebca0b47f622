//! Completing a sign-in once a code (or a new factor) has been verified: the failure counter is
//! reset (SPEC §2: "a completed sign-in resets the counter"), the sign-in is recorded for the
//! inactive-ID sweep, and a session is opened.

use serde::Serialize;

use crate::crypto::jwt::ACR_MFA;
use crate::deps::Deps;
use crate::error::ApiError;
use crate::service::codes::Verified;
use crate::service::sign_in::lockout_key;
use crate::service::tokens::{self, Proof, Tokens};
use crate::storage::UserStatus;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignedIn {
    pub status: &'static str,
    #[serde(flatten)]
    pub tokens: Tokens,
}

pub async fn complete_sign_in(deps: &Deps, verified: &Verified) -> Result<SignedIn, ApiError> {
    let user_id = &verified.challenge.user_id;
    let user = deps
        .stores
        .users
        .get_user(user_id)
        .await?
        .ok_or(ApiError::ChallengeExpired)?;
    if user.status != UserStatus::Active {
        return Err(ApiError::AccountInactive);
    }
    let now = deps.clock.now();
    deps.stores.lockouts.clear(&lockout_key(user_id)).await?;
    deps.stores.users.record_sign_in(user_id, now).await?;
    let tokens = tokens::open_session(
        deps,
        &user,
        Proof {
            amr: verified.amr(),
            acr: ACR_MFA.into(),
        },
    )
    .await?;
    tracing::info!(
        event = "sign_in_completed",
        method = verified.method.as_str(),
        "signed in"
    );
    Ok(SignedIn {
        status: "signed_in",
        tokens,
    })
}
