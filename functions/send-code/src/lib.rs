//! The code-sending function: codes for a sign-in challenge (202 with where the code went,
//! masked, and how many sends remain), and the step-up challenge of a signed-in session.

use portcullis::Deps;
use portcullis::grants::{CODE_MAC, OPEN_CODE_KEY, STATEFUL, VERIFY_TOKENS};
use portcullis::service::codes::{self, SendCodeRequest};
use portcullis::service::step_up::{self, StepUpRequest};
use portcullis::service::tokens::Caller;
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "send-code",
    grants: &[STATEFUL, &[CODE_MAC, OPEN_CODE_KEY, VERIFY_TOKENS]],
    routes: &[
        Route::public("POST /v1/sign-in/{challenge_id}/codes", send_in_sign_in),
        Route::session("POST /v1/me/step-up", start_step_up),
        Route::session("POST /v1/me/step-up/{challenge_id}/codes", send_in_step_up),
    ],
};

fn send_in_sign_in(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: SendCodeRequest = call.body()?;
        // The stamp check goes beside the send's reads (no round trip of its own).
        let opening = codes::Opening::read_sign_in(deps, &call.path("challenge_id")?).await?;
        Ok(edge::json_response(
            202,
            &codes::send_code_for(deps, &opening, &body, &call.meta).await?,
        ))
    })
}

fn start_step_up(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: StepUpRequest = call.body()?;
        Ok(edge::json_response(
            201,
            &step_up::start(deps, &caller, body).await?,
        ))
    })
}

fn send_in_step_up(deps: &Deps, call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        let body: SendCodeRequest = call.body()?;
        let challenge = step_up::challenge_of(deps, &caller, &call.path("challenge_id")?).await?;
        Ok(edge::json_response(
            202,
            &codes::send_code(deps, &challenge, &body, &caller.from).await?,
        ))
    })
}
