//! The recovery-code function: redeem a code to complete a sign-in or a step-up (the answer
//! says how many remain; the user is alerted), regenerate the set (step-up; the old set stops
//! working), and count what remains.

use portcullis::Deps;
use portcullis::grants::{CODE_MAC, OPEN_TOKEN_KEY, SIGN_TOKENS, STATEFUL};
use portcullis::service::complete;
use portcullis::service::recovery::{self, RecoveryCodes, RedeemRequest};
use portcullis::service::tokens::{Caller, Elevated};
use portcullis::service::{codes, step_up};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "recovery-codes",
    grants: &[STATEFUL, &[CODE_MAC, OPEN_TOKEN_KEY, SIGN_TOKENS]],
    routes: &[
        Route::public(
            "POST /v1/sign-in/{challenge_id}/recovery-code",
            redeem_in_sign_in,
        ),
        Route::session(
            "POST /v1/me/step-up/{challenge_id}/recovery-code",
            redeem_in_step_up,
        ),
        Route::elevated("POST /v1/me/recovery-codes", regenerate),
        Route::session("GET /v1/me/recovery-codes", remaining),
    ],
};

fn redeem_in_sign_in(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: RedeemRequest = call.body()?;
        let trust = complete::trust_request(body.trust_device, body.device_name)?;
        let challenge = codes::open_mfa_sign_in(deps, &call.path("challenge_id")?).await?;
        let (verified, remaining) =
            recovery::redeem(deps, challenge.record(), &body.code, &call.meta).await?;
        let mut signed_in =
            complete::complete_mfa_sign_in(deps, verified, &challenge, trust, &call.meta).await?;
        signed_in.recovery_codes_remaining = Some(remaining);
        Ok(edge::json_response(200, &signed_in))
    })
}

fn redeem_in_step_up(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: RedeemRequest = call.body()?;
        complete::no_trust_in_step_up(body.trust_device, body.device_name.as_deref())?;
        let challenge = step_up::challenge_of(deps, &caller, &call.path("challenge_id")?).await?;
        let (verified, remaining) =
            recovery::redeem(deps, &challenge, &body.code, &caller.from).await?;
        let mut elevated = step_up::elevate(deps, &caller, &challenge, verified).await?;
        elevated.recovery_codes_remaining = Some(remaining);
        Ok(edge::json_response(200, &elevated))
    })
}

fn regenerate(deps: &Deps, call: Call, caller: Elevated) -> Answer<'_> {
    Box::pin(async move {
        call.no_body()?;
        let recovery_codes = recovery::issue(deps, &caller.user_id, &caller.from).await?;
        Ok(edge::json_response(201, &RecoveryCodes { recovery_codes }))
    })
}

fn remaining(deps: &Deps, _call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let remaining = recovery::remaining(deps, &caller.user_id).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "remaining": remaining }),
        ))
    })
}
