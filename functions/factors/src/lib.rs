//! The factor-enrolment function: phones, email addresses, authenticator apps and passkeys,
//! enrolled inside an `mfa_enrolment_required` sign-in challenge or from a signed-in session;
//! list, rename (passkeys) and remove.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture, RequestMeta};
use portcullis::error::ApiError;
use portcullis::service::factors::{
    self, ChangePhoneRequest, EnrolEmailRequest, EnrolPhoneRequest, Enroller, RenameRequest,
    VerifyFactorRequest,
};
use portcullis::service::passkeys::{self, EnrolPasskeyRequest};
use portcullis::service::{codes, complete, tokens};
use portcullis::storage::ChallengePurpose;

pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in/{challenge_id}/factors/phone",
    "POST /v1/sign-in/{challenge_id}/factors/totp",
    "POST /v1/sign-in/{challenge_id}/factors/email",
    "POST /v1/sign-in/{challenge_id}/factors/passkey",
    "POST /v1/sign-in/{challenge_id}/factors/{factor_id}/verify",
    "GET /v1/me/factors",
    "POST /v1/me/factors/phone",
    "POST /v1/me/factors/totp",
    "POST /v1/me/factors/email",
    "POST /v1/me/factors/passkey",
    "POST /v1/me/factors/{factor_id}/verify",
    "PATCH /v1/me/factors/{factor_id}",
    "DELETE /v1/me/factors/{factor_id}",
    "PUT /v1/me/factors/{factor_id}/phone",
];

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer(RequestMeta::from_request(&req), "factors", async {
            let max = deps.settings.max_body_bytes;
            if route.starts_with("POST ") && !route.ends_with("/verify") {
                // Enrolment routes refuse outdated browsers, like sign-in (SPEC §2 item 5).
                let meta = portcullis::edge::RequestMeta::from_request(&req);
                portcullis::service::sign_in::check_client(deps, &meta)?;
            }
            if let Some(rest) = route.strip_prefix("POST /v1/sign-in/{challenge_id}/factors/") {
                let challenge_id = edge::require_path_param(&req, "challenge_id")?;
                let challenge = codes::open_challenge(deps, &challenge_id).await?;
                if challenge.purpose != ChallengePurpose::SignIn {
                    return Err(ApiError::ChallengeExpired);
                }
                let enroller = Enroller::SignIn(&challenge);
                return match rest {
                    "phone" => {
                        let body: EnrolPhoneRequest = edge::parse_json(&req, max)?;
                        Ok(edge::json_response(
                            201,
                            &factors::enrol_phone(deps, enroller, body).await?,
                        ))
                    }
                    "email" => {
                        let body: EnrolEmailRequest = edge::parse_json(&req, max)?;
                        Ok(edge::json_response(
                            201,
                            &factors::enrol_email(deps, enroller, body).await?,
                        ))
                    }
                    "totp" => {
                        edge::no_body(&req, deps.settings.max_body_bytes)?;
                        Ok(edge::json_response(
                            201,
                            &factors::enrol_totp(deps, enroller).await?,
                        ))
                    }
                    "passkey" => {
                        let body: EnrolPasskeyRequest = edge::optional_json(&req, max)?;
                        Ok(edge::json_response(
                            201,
                            &passkeys::enrol(deps, enroller, body).await?,
                        ))
                    }
                    "{factor_id}/verify" => {
                        let body: VerifyFactorRequest = edge::parse_json(&req, max)?;
                        let factor_id = edge::require_path_param(&req, "factor_id")?;
                        let proven =
                            factors::verify_factor(deps, enroller, &factor_id, &body).await?;
                        let mut signed_in = complete::complete_sign_in(
                            deps,
                            &proven.verified,
                            None,
                            &portcullis::edge::RequestMeta::from_request(&req),
                        )
                        .await?;
                        signed_in.recovery_codes = proven.recovery_codes;
                        Ok(edge::json_response(200, &signed_in))
                    }
                    _ => Err(ApiError::NotFound),
                };
            }
            let caller = tokens::authenticate(deps, edge::authorization(&req)).await?;
            let enroller = Enroller::Session(&caller);
            match route.as_str() {
                "GET /v1/me/factors" => Ok(edge::json_response(
                    200,
                    &serde_json::json!({ "factors": factors::list(deps, &caller).await? }),
                )),
                "POST /v1/me/factors/phone" => {
                    let body: EnrolPhoneRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        201,
                        &factors::enrol_phone(deps, enroller, body).await?,
                    ))
                }
                "POST /v1/me/factors/email" => {
                    let body: EnrolEmailRequest = edge::parse_json(&req, max)?;
                    Ok(edge::json_response(
                        201,
                        &factors::enrol_email(deps, enroller, body).await?,
                    ))
                }
                "POST /v1/me/factors/passkey" => {
                    let body: EnrolPasskeyRequest = edge::optional_json(&req, max)?;
                    Ok(edge::json_response(
                        201,
                        &passkeys::enrol(deps, enroller, body).await?,
                    ))
                }
                "PATCH /v1/me/factors/{factor_id}" => {
                    let body: RenameRequest = edge::parse_json(&req, max)?;
                    let factor_id = edge::require_path_param(&req, "factor_id")?;
                    Ok(edge::json_response(
                        200,
                        &factors::rename(deps, &caller, &factor_id, body).await?,
                    ))
                }
                "POST /v1/me/factors/totp" => {
                    edge::no_body(&req, deps.settings.max_body_bytes)?;
                    Ok(edge::json_response(
                        201,
                        &factors::enrol_totp(deps, enroller).await?,
                    ))
                }
                "POST /v1/me/factors/{factor_id}/verify" => {
                    let body: VerifyFactorRequest = edge::parse_json(&req, max)?;
                    let factor_id = edge::require_path_param(&req, "factor_id")?;
                    let proven = factors::verify_factor(deps, enroller, &factor_id, &body).await?;
                    let mut answer =
                        serde_json::to_value(factors::view(&proven.factor)).unwrap_or_default();
                    if let (Some(codes), Some(obj)) =
                        (proven.recovery_codes, answer.as_object_mut())
                    {
                        obj.insert("recovery_codes".into(), serde_json::json!(codes));
                    }
                    Ok(edge::json_response(200, &answer))
                }
                "PUT /v1/me/factors/{factor_id}/phone" => {
                    let body: ChangePhoneRequest = edge::parse_json(&req, max)?;
                    let factor_id = edge::require_path_param(&req, "factor_id")?;
                    Ok(edge::json_response(
                        202,
                        &factors::change_phone(deps, &caller, &factor_id, body).await?,
                    ))
                }
                "DELETE /v1/me/factors/{factor_id}" => {
                    let factor_id = edge::require_path_param(&req, "factor_id")?;
                    factors::remove(deps, &caller, &factor_id).await?;
                    Ok(edge::empty_response(204))
                }
                _ => Err(ApiError::NotFound),
            }
        })
        .await
    })
}
