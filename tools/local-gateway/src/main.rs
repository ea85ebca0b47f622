//! `portcullis-local [--listen 127.0.0.1:3000]`: every function behind one local endpoint.
//! AWS settings come from the environment (`AWS_ENDPOINT_URL` → the emulator), as in Lambda.

use std::sync::Arc;

use portcullis::Deps;
use portcullis_local_gateway::{TEMPLATE, registry, routes, server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    lambda_http::tracing::init_default_subscriber();
    let mut listen = std::env::var("PORTCULLIS_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs an address")?,
            "-h" | "--help" => {
                println!("usage: portcullis-local [--listen 127.0.0.1:3000]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let routes = routes::from_template(TEMPLATE)?;
    let deps = Deps::from_env().await?;
    let gateway = Arc::new(server::Gateway::new(
        routes.clone(),
        registry::handlers(),
        deps,
    )?);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    println!("portcullis-local listening on http://{addr}");
    for route in &routes {
        let auth = if route.public { "public" } else { "JWT" };
        println!(
            "  {:<7} {:<55} {:<28} {auth}",
            route.method, route.path, route.function
        );
    }
    server::serve(listener, gateway).await?;
    Ok(())
}
