//! The dependency builder every function uses at cold start: settings read once, SDK clients
//! built once (and their connections opened during init), the password hasher with its memory
//! allocated once. Handlers borrow a [`Deps`] for every request.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::crypto::PasswordHasher;
use crate::crypto::password::HashError;
use crate::metrics::CallCounter;
use crate::storage::Stores;
use crate::storage::dynamo::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

#[derive(Clone, Debug)]
pub struct Deps {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub stores: Stores,
    pub hasher: PasswordHasher,
    /// AWS calls made through this environment's clients (empty for in-memory stores).
    pub calls: CallCounter,
}

impl Deps {
    /// Production wiring: settings from the environment, DynamoDB through the standard AWS
    /// configuration chain (`AWS_ENDPOINT_URL` points it at LocalStack or moto locally).
    pub async fn from_env() -> Result<Self, StartupError> {
        let settings = Settings::from_env()?;
        Self::with_aws(settings).await
    }

    /// Production wiring with the given settings.
    pub async fn with_aws(settings: Settings) -> Result<Self, StartupError> {
        let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let calls = CallCounter::default();
        let dynamo_config =
            aws_sdk_dynamodb::config::Builder::from(&sdk).interceptor(calls.clone()).build();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(dynamo_config);
        let store = DynamoStore::new(dynamo.clone(), &settings.table_name);
        if let Err(err) = store.warm_up().await {
            // Not fatal: the first request retries and answers 503 if DynamoDB is still away.
            tracing::warn!(error = %err, "DynamoDB warm-up failed");
        }
        calls.reset();
        let hasher = PasswordHasher::new(settings.argon2)?;
        Ok(Deps {
            stores: Stores::dynamo(dynamo, &settings.table_name),
            settings: Arc::new(settings),
            clock: Arc::new(SystemClock),
            hasher,
            calls,
        })
    }

    /// In-memory wiring for unit/handler tests and in-process benchmarks.
    pub fn in_memory(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let hasher = PasswordHasher::new(settings.argon2)?;
        Ok(Deps {
            settings: Arc::new(settings),
            clock,
            stores: Stores::memory(),
            hasher,
            calls: CallCounter::default(),
        })
    }
}
