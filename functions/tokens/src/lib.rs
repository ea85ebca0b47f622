//! The tokens function: refresh, sign-out, and the public verification keys (JWKS and OpenID
//! discovery) that API Gateway JWT authorizers of this and other apps use.

use portcullis::Deps;
use portcullis::grants::{Grant, OPEN_TOKEN_KEY, Resource, SIGN_TOKENS, TABLE_KEY};
use portcullis::service::tokens::{self, Caller, RefreshRequest};
use portcullis_edge::{self as edge, Answer, Call, Function, Route};

pub static FUNCTION: Function = Function {
    name: "tokens",
    grants: &[&[
        Grant::on(
            Resource::MainTable,
            &["dynamodb:GetItem", "dynamodb:UpdateItem"],
        ),
        TABLE_KEY,
        OPEN_TOKEN_KEY,
        SIGN_TOKENS,
    ]],
    routes: &[
        Route::public("POST /v1/tokens/refresh", refresh),
        Route::session("POST /v1/sign-out", sign_out),
        Route::public("GET /.well-known/jwks.json", |deps, _call| {
            Box::pin(async move { Ok(edge::json_response(200, &tokens::jwks(deps).await?)) })
        }),
        Route::public("GET /.well-known/openid-configuration", |deps, _call| {
            Box::pin(async move {
                Ok(edge::json_response(
                    200,
                    &tokens::openid_configuration(deps),
                ))
            })
        }),
    ],
};

fn refresh(deps: &Deps, call: Call) -> Answer<'_> {
    Box::pin(async move {
        let body: RefreshRequest = call.body()?;
        Ok(edge::json_response(
            200,
            &tokens::refresh(deps, body).await?,
        ))
    })
}

fn sign_out(deps: &Deps, _call: Call, caller: Caller) -> Answer<'_> {
    Box::pin(async move {
        tokens::sign_out(deps, &caller).await?;
        Ok(edge::empty_response(204))
    })
}
