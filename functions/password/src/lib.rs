//! The password function: change (step-up), forgot (always 202), reset by link (204, no
//! sign-in), the change required after MFA inside a sign-in challenge, and accepting an
//! invitation (the invitee's first password).

use portcullis::Deps;
use portcullis::grants::{OPEN_TOKEN_KEY, SIGN_TOKENS, STATEFUL};
use portcullis::service::admin::{self, AcceptRequest};
use portcullis::service::codes;
use portcullis::service::password::{
    self, ChangePasswordRequest, ForgotRequest, NewPasswordRequest, ResetRequest,
};
use portcullis::service::tokens::Caller;
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "password",
    grants: &[STATEFUL, &[OPEN_TOKEN_KEY, SIGN_TOKENS]],
    routes: &[
        // A session route, not an elevated one: the service checks the new password's
        // length before elevation, and elevation before the current password.
        Route::session("POST /v1/me/password", change),
        Route::public("POST /v1/password/forgot", forgot),
        Route::public("POST /v1/password/reset", reset),
        Route::public("POST /v1/sign-in/{challenge_id}/password", required_change)
            .checking_client(),
        Route::public("POST /v1/invitations/{token}/accept", accept),
    ],
};

fn change(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: ChangePasswordRequest = call.body()?;
        password::change(deps, &caller, body).await?;
        Ok(edge::empty_response(204))
    })
}

fn forgot(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: ForgotRequest = call.body()?;
        Ok(edge::json_response(
            202,
            &password::forgot(deps, body).await?,
        ))
    })
}

fn reset(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: ResetRequest = call.body()?;
        password::reset(deps, body, &call.meta).await?;
        Ok(edge::empty_response(204))
    })
}

fn required_change(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: NewPasswordRequest = call.body()?;
        let challenge = codes::open_sign_in(deps, &call.path("challenge_id")?).await?;
        let tokens = password::complete_required_change(deps, &challenge, body, &call.meta).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({
                "status": "signed_in",
                "access_token": tokens.access_token,
                "refresh_token": tokens.refresh_token,
                "token_type": tokens.token_type,
                "expires_in": tokens.expires_in,
            }),
        ))
    })
}

fn accept(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: AcceptRequest = call.body()?;
        admin::accept(deps, &call.path("token")?, body, &call.meta).await?;
        Ok(edge::empty_response(204))
    })
}
