//! Which handler serves each function of the template. Adding a function crate means adding
//! one line here; the consistency test fails until the template, the OpenAPI document and this
//! table agree.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use lambda_http::{Body, Request, Response};
use portcullis::Deps;

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'a>>;
pub type Handler = for<'a> fn(&'a Deps, Request) -> HandlerFuture<'a>;

/// Function logical ID in the template → (handler, routes the function crate declares).
pub fn handlers() -> BTreeMap<&'static str, (Handler, &'static [&'static str])> {
    let mut map: BTreeMap<&'static str, (Handler, &'static [&'static str])> = BTreeMap::new();
    map.insert(
        "SignInFunction",
        (|deps, req| Box::pin(portcullis_sign_in::handle(deps, req)), portcullis_sign_in::ROUTES),
    );
    map
}
