//! Counts AWS calls by service and operation with an SDK interceptor. Attached to every client
//! the dependency builder makes, so the benchmark (and a curious operator) can see exactly which
//! calls a flow makes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Calls made, keyed by `(service, operation)`, e.g. `("DynamoDB", "GetItem")`.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
}

impl CallCounter {
    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "PortcullisCallCounter"
    }

    /// Once per operation (not per retry attempt). The operation's metadata is in the config
    /// bag by then (it is not yet at `read_before_execution`).
    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>()
            && let Ok(mut counts) = self.counts.lock()
        {
            *counts
                .entry((meta.service().to_owned(), meta.name().to_owned()))
                .or_default() += 1;
        }
        Ok(())
    }
}
