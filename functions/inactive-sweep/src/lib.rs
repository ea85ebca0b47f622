//! The inactive-ID sweep, run daily by an EventBridge schedule (see the template). The event
//! content is ignored; the answer reports how many IDs were scanned and deactivated.

use portcullis::Deps;
use portcullis::grants::{Grant, Grants, Resource, STATEFUL};
use portcullis::service::sweep::{self, SweepReport};

/// The AWS calls the sweep makes ([`portcullis::grants`]): it scans the main table for users
/// and deactivates the inactive ones, with their audit event and alert.
pub static GRANTS: Grants = &[
    STATEFUL,
    &[Grant::on(Resource::MainTable, &["dynamodb:Scan"])],
];

pub async fn run(deps: &Deps) -> Result<SweepReport, String> {
    sweep::sweep(deps)
        .await
        .map_err(|err| format!("sweep failed: {}", err.code()))
}
