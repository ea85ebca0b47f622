//! The sign-in function: `POST /v1/sign-in` (user ID and password), and the passwordless
//! passkey sign-in (`POST /v1/passkey/options`, `POST /v1/passkey/sign-in`). Parses, calls the
//! services, answers. Every outcome is an HTTP answer; nothing here fails the invocation.
//!
//! `POST /v1/sign-in` checks the browser inside the service (after the user's lockout state
//! is read beside it); the passwordless routes check it at the edge.

use portcullis::Deps;
use portcullis::grants::{OPEN_TOKEN_KEY, SIGN_TOKENS, STATEFUL};
use portcullis::service::passkeys::{self, PasswordlessRequest};
use portcullis::service::sign_in::{SignInRequest, sign_in};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "sign-in",
    grants: &[STATEFUL, &[OPEN_TOKEN_KEY, SIGN_TOKENS]],
    routes: &[
        Route::public("POST /v1/sign-in", password),
        Route::public("POST /v1/passkey/options", passwordless_options).checking_client(),
        Route::public("POST /v1/passkey/sign-in", passwordless).checking_client(),
    ],
};

/// The sign-in and passwordless futures are boxed: each joins several stores' calls at once,
/// and their nested future types are deep enough to overflow the compiler's layout query when
/// inlined into the handler's.
fn password(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: SignInRequest = call.body()?;
        let answer = Box::pin(sign_in(deps, body, &call.meta)).await?;
        Ok(edge::json_response(200, &answer))
    })
}

fn passwordless_options(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        call.no_body()?;
        Ok(edge::json_response(
            200,
            &passkeys::passwordless_options(deps, &call.meta).await?,
        ))
    })
}

fn passwordless(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: PasswordlessRequest = call.body()?;
        let answer = Box::pin(passkeys::passwordless_sign_in(deps, body, &call.meta)).await?;
        Ok(edge::json_response(200, &answer))
    })
}
