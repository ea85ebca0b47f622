//! The factor-enrolment function: phones, email addresses, authenticator apps and passkeys,
//! enrolled inside an `mfa_enrolment_required` sign-in challenge or from a signed-in session;
//! list, rename (passkeys) and remove.
//!
//! The enrolment routes refuse outdated browsers, like sign-in (SPEC §2 item 5); the verify
//! routes do not (the enrolment they finish was already checked).

use portcullis::Deps;
use portcullis::error::ApiError;
use portcullis::grants::{CODE_MAC, Grant, Resource, SIGN_TOKENS, STATEFUL};
use portcullis::service::codes::SignInChallenge;
use portcullis::service::factors::{
    self, ChangePhoneRequest, EnrolEmailRequest, EnrolPhoneRequest, Enroller, RenameRequest,
    VerifyFactorRequest,
};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest};
use portcullis::service::tokens::Caller;
use portcullis::service::{codes, complete};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "factors",
    grants: &[
        STATEFUL,
        // Sealing a new TOTP seed; opening it and both sealed keys.
        &[
            CODE_MAC,
            Grant::on(Resource::DataKey, &["kms:Encrypt", "kms:Decrypt"]),
            SIGN_TOKENS,
        ],
    ],
    routes: &[
        Route::public("POST /v1/sign-in/{challenge_id}/factors/phone", |d, c| {
            Box::pin(in_sign_in(d, c, Kind::Phone))
        })
        .checking_client(),
        Route::public("POST /v1/sign-in/{challenge_id}/factors/totp", |d, c| {
            Box::pin(in_sign_in(d, c, Kind::Totp))
        })
        .checking_client(),
        Route::public("POST /v1/sign-in/{challenge_id}/factors/email", |d, c| {
            Box::pin(in_sign_in(d, c, Kind::Email))
        })
        .checking_client(),
        Route::public("POST /v1/sign-in/{challenge_id}/factors/passkey", |d, c| {
            Box::pin(in_sign_in(d, c, Kind::Passkey))
        })
        .checking_client(),
        Route::public(
            "POST /v1/sign-in/{challenge_id}/factors/{factor_id}/verify",
            verify_in_sign_in,
        ),
        Route::session("GET /v1/me/factors", list),
        Route::session("POST /v1/me/factors/phone", |d, c, who| {
            Box::pin(in_session(d, c, who, Kind::Phone))
        })
        .checking_client(),
        Route::session("POST /v1/me/factors/totp", |d, c, who| {
            Box::pin(in_session(d, c, who, Kind::Totp))
        })
        .checking_client(),
        Route::session("POST /v1/me/factors/email", |d, c, who| {
            Box::pin(in_session(d, c, who, Kind::Email))
        })
        .checking_client(),
        Route::session("POST /v1/me/factors/passkey", |d, c, who| {
            Box::pin(in_session(d, c, who, Kind::Passkey))
        })
        .checking_client(),
        Route::session("POST /v1/me/factors/{factor_id}/verify", verify_in_session),
        Route::session("PATCH /v1/me/factors/{factor_id}", rename),
        Route::session("DELETE /v1/me/factors/{factor_id}", remove),
        Route::session("PUT /v1/me/factors/{factor_id}/phone", change_phone),
    ],
};

/// The factor kind an enrolment route names.
#[derive(Clone, Copy)]
enum Kind {
    Phone,
    Totp,
    Email,
    Passkey,
}

/// The sign-in challenge in the path, which must be a sign-in (not a step-up) one.
async fn sign_in_challenge(deps: &Deps, call: &Call) -> Result<SignInChallenge, ApiError> {
    codes::open_sign_in(deps, &call.path("challenge_id")?).await
}

/// Starts an enrolment of `kind` for `enroller`: 201 with what the client shows next.
async fn enrol(
    deps: &Deps,
    call: &Call,
    enroller: Enroller<'_>,
    kind: Kind,
) -> Result<lambda_http::Response<lambda_http::Body>, ApiError> {
    let answer = match kind {
        Kind::Phone => {
            let body: EnrolPhoneRequest = call.body()?;
            edge::json_response(201, &factors::enrol_phone(deps, enroller, body).await?)
        }
        Kind::Email => {
            let body: EnrolEmailRequest = call.body()?;
            edge::json_response(201, &factors::enrol_email(deps, enroller, body).await?)
        }
        Kind::Totp => {
            call.no_body()?;
            edge::json_response(201, &factors::enrol_totp(deps, enroller).await?)
        }
        Kind::Passkey => {
            let body: EnrolPasskeyRequest = call.optional_body()?;
            edge::json_response(201, &passkeys::enrol(deps, enroller, body).await?)
        }
    };
    Ok(answer)
}

async fn in_sign_in(
    deps: &Deps,
    call: Call,
    kind: Kind,
) -> Result<lambda_http::Response<lambda_http::Body>, ApiError> {
    let challenge = sign_in_challenge(deps, &call).await?;
    enrol(deps, &call, Enroller::SignIn(&challenge, &call.meta), kind).await
}

async fn in_session(
    deps: &Deps,
    call: Call,
    caller: Caller,
    kind: Kind,
) -> Result<lambda_http::Response<lambda_http::Body>, ApiError> {
    enrol(deps, &call, Enroller::Session(&caller), kind).await
}

/// The first factor's code proves it and completes the sign-in (with the first recovery codes).
fn verify_in_sign_in(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: VerifyFactorRequest = call.body()?;
        let factor_id = call.path("factor_id")?;
        let challenge = sign_in_challenge(deps, &call).await?;
        let proven = factors::verify_factor(
            deps,
            Enroller::SignIn(&challenge, &call.meta),
            &factor_id,
            &body,
        )
        .await?;
        let mut signed_in =
            complete::complete_sign_in(deps, proven.verified, None, &call.meta).await?;
        signed_in.recovery_codes = proven.recovery_codes;
        Ok(edge::json_response(200, &signed_in))
    })
}

fn verify_in_session(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: VerifyFactorRequest = call.body()?;
        let factor_id = call.path("factor_id")?;
        let proven =
            factors::verify_factor(deps, Enroller::Session(&caller), &factor_id, &body).await?;
        let mut answer = serde_json::to_value(factors::view(&proven.factor)).unwrap_or_default();
        if let (Some(codes), Some(obj)) = (proven.recovery_codes, answer.as_object_mut()) {
            obj.insert("recovery_codes".into(), serde_json::json!(codes));
        }
        Ok(edge::json_response(200, &answer))
    })
}

fn list(deps: &Deps, _call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let factors = factors::list(deps, &caller).await?;
        Ok(edge::json_response(
            200,
            &serde_json::json!({ "factors": factors }),
        ))
    })
}

fn rename(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: RenameRequest = call.body()?;
        let factor_id = call.path("factor_id")?;
        Ok(edge::json_response(
            200,
            &factors::rename(deps, &caller, &factor_id, body).await?,
        ))
    })
}

fn change_phone(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: ChangePhoneRequest = call.body()?;
        let factor_id = call.path("factor_id")?;
        Ok(edge::json_response(
            202,
            &factors::change_phone(deps, &caller, &factor_id, body).await?,
        ))
    })
}

fn remove(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        factors::remove(deps, &caller, &call.path("factor_id")?).await?;
        Ok(edge::empty_response(204))
    })
}
