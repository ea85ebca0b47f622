//! The factor-enrolment function: phones and authenticator apps, enrolled inside an
//! `mfa_enrolment_required` sign-in challenge or from a signed-in session; list and remove.

use lambda_http::Request;
use portcullis::Deps;
use portcullis::edge::{self, HandlerFuture};
use portcullis::error::ApiError;
use portcullis::service::factors::{self, EnrolPhoneRequest, Enroller, VerifyFactorRequest};
use portcullis::service::{codes, complete, tokens};
use portcullis::storage::ChallengePurpose;

pub const ROUTES: &[&str] = &[
    "POST /v1/sign-in/{challenge_id}/factors/phone",
    "POST /v1/sign-in/{challenge_id}/factors/totp",
    "POST /v1/sign-in/{challenge_id}/factors/{factor_id}/verify",
    "GET /v1/me/factors",
    "POST /v1/me/factors/phone",
    "POST /v1/me/factors/totp",
    "POST /v1/me/factors/{factor_id}/verify",
    "DELETE /v1/me/factors/{factor_id}",
];

/// Bodies of routes that take none must still be empty or `{}`.
fn no_body(req: &Request, deps: &Deps) -> Result<(), ApiError> {
    match req.body() {
        lambda_http::Body::Empty => Ok(()),
        lambda_http::Body::Text(t) if t.trim().is_empty() => Ok(()),
        _ => {
            let _: serde_json::Map<String, serde_json::Value> =
                edge::parse_json(req, deps.settings.max_body_bytes).and_then(
                    |m: serde_json::Map<String, serde_json::Value>| {
                        if m.is_empty() {
                            Ok(m)
                        } else {
                            Err(ApiError::validation("This request takes no fields."))
                        }
                    },
                )?;
            Ok(())
        }
    }
}

pub fn handle(deps: &Deps, req: Request) -> HandlerFuture<'_> {
    Box::pin(async move {
        let route = edge::route_key(&req);
        edge::answer("factors", async {
            let max = deps.settings.max_body_bytes;
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
                    "totp" => {
                        no_body(&req, deps)?;
                        Ok(edge::json_response(
                            201,
                            &factors::enrol_totp(deps, enroller).await?,
                        ))
                    }
                    "{factor_id}/verify" => {
                        let body: VerifyFactorRequest = edge::parse_json(&req, max)?;
                        let factor_id = edge::require_path_param(&req, "factor_id")?;
                        let (_, verified) =
                            factors::verify_factor(deps, enroller, &factor_id, &body).await?;
                        Ok(edge::json_response(
                            200,
                            &complete::complete_sign_in(deps, &verified).await?,
                        ))
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
                "POST /v1/me/factors/totp" => {
                    no_body(&req, deps)?;
                    Ok(edge::json_response(
                        201,
                        &factors::enrol_totp(deps, enroller).await?,
                    ))
                }
                "POST /v1/me/factors/{factor_id}/verify" => {
                    let body: VerifyFactorRequest = edge::parse_json(&req, max)?;
                    let factor_id = edge::require_path_param(&req, "factor_id")?;
                    let (factor, _) =
                        factors::verify_factor(deps, enroller, &factor_id, &body).await?;
                    Ok(edge::json_response(200, &factors::view(&factor)))
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
