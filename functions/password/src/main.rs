//! Lambda entry point: dependencies built once at cold start, then every request answered.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    portcullis_edge::serve(&portcullis_password::FUNCTION).await
}
