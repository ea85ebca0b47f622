//! The dependency builder every function uses at cold start: settings read once, SDK clients
//! built once (connections opened during init), the password hasher with its memory allocated
//! once, the notifier registry built once. Handlers borrow a [`Deps`] for every request.

use std::sync::Arc;

use crate::clock::{Clock, SystemClock};
use crate::config::{ConfigError, Settings};
use crate::crypto::PasswordHasher;
use crate::crypto::jwt::LocalSigner;
use crate::crypto::keyed::{
    CodeMac, KmsCodeMac, KmsSealer, LocalCodeMac, MemorySealer, SecretSealer,
};
use crate::crypto::password::HashError;
use crate::error::StoreError;
use crate::metrics::CallCounter;
use crate::notifier::{self, Registry, RegistryError};
use crate::outbox::{InlineOutbox, Outbox, SqsOutbox};
use crate::signing::TokenSigning;
use crate::storage::Stores;
use crate::storage::dynamo::DynamoStore;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Notifiers(#[from] RegistryError),
}

pub use crate::signing::SignerSlot;

#[derive(Clone, Debug)]
pub struct Deps {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub stores: Stores,
    pub hasher: PasswordHasher,
    pub mac: Arc<dyn CodeMac>,
    pub sealer: Arc<dyn SecretSealer>,
    pub signer: Arc<SignerSlot>,
    pub notifiers: Registry,
    /// Where alerts, reset links, invitations and unwritten audit events are queued (SPEC §15).
    pub outbox: Arc<dyn Outbox>,
    /// AWS calls made through this environment's clients (empty for in-memory stores).
    pub calls: CallCounter,
}

/// A key that is not configured: every use fails with a clear log line and a 503.
#[derive(Debug)]
struct Unconfigured(&'static str);

#[async_trait::async_trait]
impl CodeMac for Unconfigured {
    async fn mac(&self, _: &[u8]) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "{} is not configured",
            self.0
        )))
    }
}

#[async_trait::async_trait]
impl SecretSealer for Unconfigured {
    async fn seal(
        &self,
        _: &[u8],
        _: crate::crypto::keyed::Context<'_>,
    ) -> Result<String, StoreError> {
        Err(StoreError::Unavailable(format!(
            "{} is not configured",
            self.0
        )))
    }
    async fn open(
        &self,
        _: &str,
        _: crate::crypto::keyed::Context<'_>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        Err(StoreError::Unavailable(format!(
            "{} is not configured",
            self.0
        )))
    }
}

impl Deps {
    /// Production wiring: settings from the environment, AWS through the standard
    /// configuration chain (`AWS_ENDPOINT_URL` points it at LocalStack or moto locally).
    pub async fn from_env() -> Result<Self, StartupError> {
        let settings = Settings::from_env()?;
        Self::with_aws(settings).await
    }

    /// Production wiring with the given settings.
    pub async fn with_aws(settings: Settings) -> Result<Self, StartupError> {
        Self::with_sdk_config(settings, Self::sdk_config().await).await
    }

    /// The standard AWS configuration chain with bounded retries and timeouts: at most 3
    /// attempts, 1 s to connect, 2 s per attempt, 5 s per operation — well inside a Lambda's
    /// 10 s, so a failing dependency becomes a prompt 503, never a hung invocation.
    pub async fn sdk_config() -> aws_config::SdkConfig {
        Self::sdk_loader().load().await
    }

    /// The loader behind [`Deps::sdk_config`] (tests add an endpoint to it): 3 attempts, 1 s to
    /// connect, 2 s per attempt and 5 s per operation — in AWS a call takes milliseconds, so a
    /// stuck dependency becomes a prompt 503. All three can be raised for a slower endpoint
    /// (an emulator on a busy machine): `PORTCULLIS_AWS_CONNECT_TIMEOUT_MS`,
    /// `PORTCULLIS_AWS_ATTEMPT_TIMEOUT_MS`, `PORTCULLIS_AWS_OPERATION_TIMEOUT_MS` (an
    /// unreadable value keeps the default). The connect timeout matters to the local endpoint
    /// under load: one process stands in for every Lambda, so 200 users' sign-ins, each making
    /// up to six calls at once, open more connections to the emulator at once than its accept
    /// queue holds (a Lambda environment serves one request, so it opens six at most).
    pub fn sdk_loader() -> aws_config::ConfigLoader {
        let millis = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|ms| *ms > 0)
                .map_or(std::time::Duration::from_millis(default), |ms| {
                    std::time::Duration::from_millis(ms)
                })
        };
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(millis("PORTCULLIS_AWS_CONNECT_TIMEOUT_MS", 1_000))
                    .operation_attempt_timeout(millis("PORTCULLIS_AWS_ATTEMPT_TIMEOUT_MS", 2_000))
                    .operation_timeout(millis("PORTCULLIS_AWS_OPERATION_TIMEOUT_MS", 5_000))
                    .build(),
            )
    }

    /// Production wiring with the given settings and AWS configuration.
    pub async fn with_sdk_config(
        settings: Settings,
        sdk: aws_config::SdkConfig,
    ) -> Result<Self, StartupError> {
        let calls = CallCounter::default();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .build(),
        );
        let clients = notifier::Clients {
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            ses: aws_sdk_ses::Client::from_conf(
                aws_sdk_ses::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
        };
        let configs = match &settings.notifiers_json {
            Some(json) => Registry::parse_config(json)?,
            None => notifier::default_configs(
                settings.voice_topic_arn.as_deref(),
                settings.email_sender.as_deref(),
            ),
        };
        let notifiers = Registry::build(&configs, &clients)?;
        let store = DynamoStore::new(dynamo.clone(), &settings.table_name);
        if let Err(err) = store.warm_up().await {
            // Not fatal: the first request retries and answers 503 if DynamoDB is still away.
            tracing::warn!(error = %err, "DynamoDB warm-up failed");
        }
        calls.reset();
        let mac: Arc<dyn CodeMac> = match &settings.code_key_id {
            Some(key) => Arc::new(KmsCodeMac::new(kms.clone(), key)),
            None => Arc::new(Unconfigured("PORTCULLIS_CODE_KEY_ID")),
        };
        let sealer: Arc<dyn SecretSealer> = match &settings.data_key_id {
            Some(key) => Arc::new(KmsSealer::new(kms.clone(), key)),
            None => Arc::new(Unconfigured("PORTCULLIS_DATA_KEY_ID")),
        };
        let stores =
            Stores::dynamo_with_audit(dynamo, &settings.table_name, &settings.audit_table_name);
        let signer = match (settings.token_signing, &settings.signing_key_id) {
            (TokenSigning::Envelope, _) if settings.data_key_id.is_some() => SignerSlot::envelope(
                stores.keys.clone(),
                crate::storage::TOKEN_SIGNING_KEYS,
                sealer.clone(),
            ),
            (TokenSigning::Envelope, _) => SignerSlot::unconfigured("PORTCULLIS_DATA_KEY_ID"),
            (TokenSigning::Kms, Some(key)) => SignerSlot::kms(kms.clone(), key),
            (TokenSigning::Kms, None) => SignerSlot::unconfigured("PORTCULLIS_SIGNING_KEY_ID"),
        };
        let outbox: Arc<dyn Outbox> = match &settings.outbox_queue_url {
            Some(url) => Arc::new(SqsOutbox::new(
                aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(&sdk)
                        .interceptor(calls.clone())
                        .build(),
                ),
                url,
            )),
            None => Arc::new(InlineOutbox),
        };
        let hasher = PasswordHasher::new(settings.argon2)?;
        Ok(Deps {
            outbox,
            stores,
            settings: Arc::new(settings),
            clock: Arc::new(SystemClock),
            hasher,
            mac,
            sealer,
            signer: Arc::new(signer),
            notifiers,
            calls,
        })
    }

    /// In-memory wiring for unit/handler tests and in-process benchmarks: memory stores, a
    /// local HMAC key and P-256 key, a sealer that enforces contexts, no notifiers (tests add
    /// a [`crate::notifier::RecordingNotifier`]).
    pub fn in_memory(settings: Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let hasher = PasswordHasher::new(settings.argon2)?;
        Ok(Deps {
            settings: Arc::new(settings),
            clock,
            stores: Stores::memory(),
            hasher,
            mac: Arc::new(LocalCodeMac::random()),
            sealer: Arc::new(MemorySealer::default()),
            signer: Arc::new(SignerSlot::ready(Arc::new(LocalSigner::random()))),
            notifiers: Registry::default(),
            outbox: Arc::new(InlineOutbox),
            calls: CallCounter::default(),
        })
    }
}
