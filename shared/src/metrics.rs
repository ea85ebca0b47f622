//! Counts AWS calls by service and operation with an SDK interceptor. Attached to every client
//! the dependency builder makes, so the benchmark (and a curious operator) can see exactly which
//! calls a flow makes, and how many of them the request waited for one after another (the
//! longest chain of calls that did not overlap in time).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Calls made, keyed by `(service, operation)`, e.g. `("DynamoDB", "GetItem")`.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<(String, String), u64>>>,
    /// When each operation started and ended (since the last reset).
    spans: Arc<Mutex<Vec<(Instant, Instant)>>>,
}

/// When an operation started: kept in its own config bag between the two hooks.
#[derive(Debug, Clone)]
struct Started(Instant);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

/// The most operations of `spans` that ran one after another: the longest chain in which each
/// starts after the previous one ended. All sequential → the number of calls; all at once → 1.
pub fn longest_chain(spans: &[(Instant, Instant)]) -> usize {
    let mut sorted = spans.to_vec();
    sorted.sort_by_key(|(start, _)| *start);
    // chain[i]: the longest chain that ends with operation i.
    let mut chain = vec![1usize; sorted.len()];
    for i in 0..sorted.len() {
        for j in 0..i {
            if sorted[j].1 <= sorted[i].0 {
                chain[i] = chain[i].max(chain[j] + 1);
            }
        }
    }
    chain.into_iter().max().unwrap_or(0)
}

impl CallCounter {
    /// The longest chain of calls made one after another since the last reset.
    pub fn longest_chain(&self) -> usize {
        self.spans
            .lock()
            .map(|spans| longest_chain(&spans))
            .unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.clear();
        }
        if let Ok(mut spans) = self.spans.lock() {
            spans.clear();
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

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Started(Instant::now()));
        Ok(())
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
        if let Some(Started(started)) = cfg.load::<Started>()
            && let Ok(mut spans) = self.spans.lock()
        {
            spans.push((*started, Instant::now()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_longest_chain_counts_calls_that_waited_for_each_other() {
        let t0 = Instant::now();
        let at = |a: u64, b: u64| (t0 + Duration::from_millis(a), t0 + Duration::from_millis(b));
        assert_eq!(longest_chain(&[]), 0);
        // Three in a row.
        assert_eq!(longest_chain(&[at(0, 10), at(10, 20), at(25, 30)]), 3);
        // Two at once, then one after both: a chain of 2.
        assert_eq!(longest_chain(&[at(0, 10), at(1, 12), at(12, 20)]), 2);
        // All at once.
        assert_eq!(longest_chain(&[at(0, 10), at(1, 9), at(2, 8)]), 1);
        // Order of recording does not matter.
        assert_eq!(longest_chain(&[at(25, 30), at(0, 10), at(10, 20)]), 3);
    }
}
