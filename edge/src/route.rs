//! Routes as data. Each function crate writes one table of [`Route`]s: the route key as API
//! Gateway matches it (`METHOD /path/{param}`), what the caller must present, and the handler.
//! The route list the local endpoint and the consistency test read is derived from that table
//! (no second list), and [`dispatch`] runs the access check *before* the handler:
//!
//! - [`Route::public`]: no bearer token. What the request carries (a password, a challenge ID
//!   in the path, a reset or invitation token) is the credential, and the service checks it.
//! - [`Route::session`]: a valid access token of a live session. The handler's signature takes
//!   the [`Caller`], so a session route cannot forget to authenticate: without a caller there
//!   is nothing to call it with.
//! - [`Route::elevated`]: a session proven with MFA within the step-up window (SPEC §5). The
//!   handler takes an [`Elevated`], which only [`Caller::elevated`] makes.
//! - [`Route::admin`]: an elevated session of an active user whose token *and* stored record
//!   carry the `admin` role. The handler takes an [`Admin`], which only
//!   [`admin::require_admin`] makes, and so does every admin service.
//!
//! [`Route::checking_client`] adds the minimum-browser check (refused outdated browsers) of
//! the routes that start or extend a sign-in.
//!

use std::future::Future;
use std::pin::Pin;

use lambda_http::{Body, Request, Response};
use serde::de::DeserializeOwned;

use crate::{RequestMeta, answer, authorization, request_meta, route_key};
use portcullis::Deps;
use portcullis::error::ApiError;
use portcullis::service::admin::{self, Admin};
use portcullis::service::tokens::{self, Caller, Elevated};

/// What a handler returns; the edge turns an `Err` into problem+json.
pub type Answer<'a> = Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send + 'a>>;

/// What a route demands before its handler runs (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Session,
    Elevated,
    Admin,
}

/// A route's handler; its arguments follow from the route's [`Access`].
#[derive(Clone, Copy)]
enum Serve {
    Public(for<'a> fn(&'a Deps, Call) -> Answer<'a>),
    Session(for<'a> fn(&'a Deps, Call, Caller) -> Answer<'a>),
    Elevated(for<'a> fn(&'a Deps, Call, Elevated) -> Answer<'a>),
    Admin(for<'a> fn(&'a Deps, Call, Admin) -> Answer<'a>),
}

/// One row of a function's route table.
#[derive(Clone, Copy)]
pub struct Route {
    /// `METHOD /path/{param}`, as written in `infra/template.yaml`.
    pub key: &'static str,
    serve: Serve,
    checks_client: bool,
}

impl Route {
    pub const fn public(
        key: &'static str,
        handler: for<'a> fn(&'a Deps, Call) -> Answer<'a>,
    ) -> Self {
        Route {
            key,
            serve: Serve::Public(handler),
            checks_client: false,
        }
    }

    pub const fn session(
        key: &'static str,
        handler: for<'a> fn(&'a Deps, Call, Caller) -> Answer<'a>,
    ) -> Self {
        Route {
            key,
            serve: Serve::Session(handler),
            checks_client: false,
        }
    }

    pub const fn elevated(
        key: &'static str,
        handler: for<'a> fn(&'a Deps, Call, Elevated) -> Answer<'a>,
    ) -> Self {
        Route {
            key,
            serve: Serve::Elevated(handler),
            checks_client: false,
        }
    }

    pub const fn admin(
        key: &'static str,
        handler: for<'a> fn(&'a Deps, Call, Admin) -> Answer<'a>,
    ) -> Self {
        Route {
            key,
            serve: Serve::Admin(handler),
            checks_client: false,
        }
    }

    /// The route refuses browsers older than the configured minimums (before anything else).
    pub const fn checking_client(mut self) -> Self {
        self.checks_client = true;
        self
    }

    pub const fn access(&self) -> Access {
        match self.serve {
            Serve::Public(_) => Access::Public,
            Serve::Session(_) => Access::Session,
            Serve::Elevated(_) => Access::Elevated,
            Serve::Admin(_) => Access::Admin,
        }
    }

    pub const fn checks_client(&self) -> bool {
        self.checks_client
    }
}

/// A function: its name (in logs) and its route table.
pub struct Function {
    pub name: &'static str,
    pub routes: &'static [Route],
    /// The AWS calls the function may make: its IAM policy in the template lists exactly these
    /// (a test compares them), and its SDK clients refuse anything else ([`portcullis::grants`]).
    pub grants: portcullis::grants::Grants,
}

impl Function {
    /// The route keys, as the template must list them for this function.
    pub fn route_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.routes.iter().map(|r| r.key)
    }

    /// Answers one request (see [`dispatch`]).
    pub async fn handle(&self, deps: &Deps, req: Request) -> Response<Body> {
        dispatch(deps, req, self).await
    }
}

/// The request as a handler sees it: the body and parameters, read with the edge's checks
/// (size, content type, strict JSON), and who sent it.
pub struct Call {
    req: Request,
    /// The caller's source IP, User-Agent and device token, as API Gateway reported them.
    pub meta: RequestMeta,
    max_body: usize,
}

impl Call {
    /// The JSON body (unknown fields refused).
    pub fn body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        crate::parse_json(&self.req, self.max_body)
    }

    /// The JSON body, or `T::default()` when there is none.
    pub fn optional_body<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        crate::optional_json(&self.req, self.max_body)
    }

    /// Refuses a body on a route that takes none.
    pub fn no_body(&self) -> Result<(), ApiError> {
        crate::no_body(&self.req, self.max_body)
    }

    /// A path parameter of the route (missing, empty or over 256 bytes: 404).
    pub fn path(&self, name: &str) -> Result<String, ApiError> {
        crate::require_path_param(&self.req, name)
    }

    /// A query-string parameter (over 256 bytes: 400).
    pub fn query(&self, name: &str) -> Result<Option<String>, ApiError> {
        crate::query_param(&self.req, name)
    }
}

/// Answers one request of `function`: finds its route, runs the route's access check, then
/// its handler. A route key the table does not hold is a 404 (API Gateway sends a function
/// only its own routes, so this is a wiring error, not a caller's).
pub async fn dispatch(deps: &Deps, req: Request, function: &Function) -> Response<Body> {
    let key = route_key(&req);
    let meta = request_meta(&req);
    let call = Call {
        req,
        meta,
        max_body: deps.settings.max_body_bytes,
    };
    answer(function.name, async move {
        let route = function
            .routes
            .iter()
            .find(|r| r.key == key)
            .ok_or(ApiError::NotFound)?;
        if route.checks_client {
            portcullis::service::sign_in::check_client(deps, &call.meta)?;
        }
        match route.serve {
            Serve::Public(handler) => handler(deps, call).await,
            Serve::Session(handler) => {
                let caller =
                    tokens::authenticate(deps, authorization(&call.req), &call.meta).await?;
                handler(deps, call, caller).await
            }
            Serve::Elevated(handler) => {
                let caller =
                    tokens::authenticate(deps, authorization(&call.req), &call.meta).await?;
                let elevated = caller.elevated(deps)?;
                handler(deps, call, elevated).await
            }
            Serve::Admin(handler) => {
                let caller =
                    tokens::authenticate(deps, authorization(&call.req), &call.meta).await?;
                let admin = admin::require_admin(deps, &caller).await?;
                handler(deps, call, admin).await
            }
        }
    })
    .await
}
