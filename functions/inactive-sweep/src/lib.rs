//! The inactive-ID sweep, run daily by an EventBridge schedule (see the template). The event
//! content is ignored; the answer reports how many IDs were scanned and deactivated.

use portcullis::Deps;
use portcullis::service::sweep::{self, SweepReport};

pub async fn run(deps: &Deps) -> Result<SweepReport, String> {
    sweep::sweep(deps)
        .await
        .map_err(|err| format!("sweep failed: {}", err.code()))
}
