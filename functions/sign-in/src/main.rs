//! Lambda entry point: build the dependencies once at cold start, then serve requests.

use lambda_http::{Error, service_fn};
use portcullis::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, std::convert::Infallible>(portcullis_sign_in::handle(deps, req).await)
    }))
    .await
}
