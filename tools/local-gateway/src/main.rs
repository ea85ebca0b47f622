//! `portcullis-local [--listen 127.0.0.1:3000]`: every function behind one local endpoint, and
//! the reference web client (`PORTCULLIS_WEB_DIR`, default `web/`) at `/`.
//! AWS settings come from the environment (`AWS_ENDPOINT_URL` → the emulator), as in Lambda.

use std::sync::Arc;

use portcullis::Deps;
use portcullis_local_gateway::{TEMPLATE, outbox, registry, routes, server};

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
    if let Some(queue_url) = deps.settings.outbox_queue_url.clone() {
        let sqs = aws_sdk_sqs::Client::new(&Deps::sdk_config().await);
        println!("  draining the outbox {queue_url} through the sender function");
        let sender = Deps::for_function("sender", portcullis_sender::GRANTS).await?;
        tokio::spawn(outbox::drain(sender, sqs, queue_url));
    }
    let handlers = registry::handlers();
    // Each function with its own clients, guarded by its grants (as its own IAM role would).
    let mut function_deps = std::collections::BTreeMap::new();
    for function in handlers.values() {
        function_deps.insert(
            function.name,
            Deps::for_function(function.name, function.grants).await?,
        );
    }
    let mut gateway = server::Gateway::new(routes.clone(), handlers, deps)?;
    gateway.function_deps = function_deps;
    // The reference web client: `PORTCULLIS_WEB_DIR`, else `web/` in the working directory.
    let web_dir = std::path::PathBuf::from(
        std::env::var("PORTCULLIS_WEB_DIR").unwrap_or_else(|_| "web".into()),
    );
    if web_dir.join("index.html").is_file() {
        gateway.web_root = Some(web_dir.clone());
    }
    if let Some(limit) = std::env::var("PORTCULLIS_LOCAL_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        println!("  at most {limit} requests handled at once (PORTCULLIS_LOCAL_CONCURRENCY)");
        gateway.concurrency = Some(Arc::new(tokio::sync::Semaphore::new(limit)));
    }
    let gateway = Arc::new(gateway);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let addr = listener.local_addr()?;
    println!("portcullis-local listening on http://{addr}");
    match &gateway.web_root {
        Some(dir) => println!(
            "  GET     /  the reference web client, from {}",
            dir.display()
        ),
        None => println!("  (no web client: {} has no index.html)", web_dir.display()),
    }
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
