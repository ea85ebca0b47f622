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
use crate::grants::{GrantGuard, Grants};
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

use crate::code_keys::{CodeKeys, CodeMacMode};
pub use crate::signing::SignerSlot;

#[derive(Clone, Debug)]
pub struct Deps {
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub stores: Stores,
    pub hasher: PasswordHasher,
    /// KMS `GenerateMac`: recovery-code tags (and one-time codes in `kms` mode, through
    /// `code_keys`).
    pub mac: Arc<dyn CodeMac>,
    /// The key one-time codes are MACed under (SPEC §3): see [`crate::code_keys`].
    pub code_keys: Arc<CodeKeys>,
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

/// The certificate authorities the AWS SDK's TLS accepts (`PORTCULLIS_AWS_TLS_ROOTS`).
///
/// - **`amazon`** (the default): only the five roots of Amazon Trust Services, compiled in
///   (`shared/data/amazon-trust-services-roots.pem`: Amazon Root CA 1–4 and Starfield Services
///   Root Certificate Authority – G2, the roots every AWS service endpoint of the `aws`
///   partition chains to). A certificate for an AWS host from any other authority — mis-issued,
///   or from an intercepting proxy — is refused, and no start reads the system's store (on
///   Debian, 146 files: about a third of a function's start on this machine).
/// - **`system`**: the operating system's roots, as the SDK does by default. For endpoints
///   that chain elsewhere (the `aws-cn` partition, an emulator served over HTTPS with its own
///   certificate, a TLS-inspecting egress proxy; `HTTPS_PROXY` is honoured only in this mode).
///
/// An unreadable value is `amazon`, the stricter. Plain-HTTP endpoints (the emulators
/// locally) use no TLS in either mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsTlsRoots {
    Amazon,
    System,
}

/// Amazon Trust Services' roots (PEM), as the `amazon` mode trusts them.
pub const AMAZON_TRUST_SERVICES_ROOTS: &str =
    include_str!("../data/amazon-trust-services-roots.pem");

impl AwsTlsRoots {
    pub fn parse(text: &str) -> AwsTlsRoots {
        match text.trim() {
            "system" => AwsTlsRoots::System,
            _ => AwsTlsRoots::Amazon,
        }
    }

    fn from_env() -> AwsTlsRoots {
        match std::env::var("PORTCULLIS_AWS_TLS_ROOTS") {
            Ok(text) => {
                let roots = AwsTlsRoots::parse(&text);
                if roots == AwsTlsRoots::Amazon && text.trim() != "amazon" {
                    tracing::warn!(
                        value = %text,
                        "PORTCULLIS_AWS_TLS_ROOTS is neither amazon nor system: using amazon"
                    );
                }
                roots
            }
            Err(_) => AwsTlsRoots::Amazon,
        }
    }
}

/// The SDK's HTTPS client (rustls with aws-lc, as its default) trusting only
/// [`AMAZON_TRUST_SERVICES_ROOTS`].
fn amazon_roots_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS.as_bytes());
    let builder = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(
        tls::rustls_provider::CryptoMode::AwsLc,
    ));
    match tls::TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        // Building a context cannot fail today. Should it, fail closed: a client without TLS,
        // so no call to an HTTPS endpoint goes out under other roots (every one fails, 503).
        Err(err) => {
            tracing::error!(error = %err, "TLS context with Amazon's roots not built: AWS calls over HTTPS will fail");
            aws_smithy_http_client::Builder::new().build_http()
        }
    }
}

impl Deps {
    /// Production wiring: settings from the environment, AWS through the standard
    /// configuration chain (`AWS_ENDPOINT_URL` points it at LocalStack or moto locally).
    pub async fn from_env() -> Result<Self, StartupError> {
        let settings = Settings::from_env()?;
        Self::with_aws(settings).await
    }

    /// Production wiring for one function: as [`Deps::from_env`], with SDK clients that refuse
    /// any AWS call outside the function's declared `grants` ([`crate::grants`]).
    pub async fn for_function(
        function: &'static str,
        grants: Grants,
    ) -> Result<Self, StartupError> {
        let settings = Settings::from_env()?;
        let sdk = Self::sdk_config().await;
        Self::with_sdk_config_for(function, grants, settings, sdk).await
    }

    /// [`Deps::with_sdk_config`], guarded by `function`'s `grants`.
    pub async fn with_sdk_config_for(
        function: &'static str,
        grants: Grants,
        settings: Settings,
        sdk: aws_config::SdkConfig,
    ) -> Result<Self, StartupError> {
        let guard = GrantGuard::new(
            function,
            grants,
            &settings.table_name,
            &settings.audit_table_name,
        );
        Self::guarded(settings, sdk, guard).await
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
        let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let loader = match AwsTlsRoots::from_env() {
            AwsTlsRoots::Amazon => loader.http_client(amazon_roots_https_client()),
            AwsTlsRoots::System => loader,
        };
        loader
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(millis("PORTCULLIS_AWS_CONNECT_TIMEOUT_MS", 1_000))
                    .operation_attempt_timeout(millis("PORTCULLIS_AWS_ATTEMPT_TIMEOUT_MS", 2_000))
                    .operation_timeout(millis("PORTCULLIS_AWS_OPERATION_TIMEOUT_MS", 5_000))
                    .build(),
            )
    }

    /// Production wiring with the given settings and AWS configuration, with no grant guard
    /// (the operator CLI, which runs with an operator's own credentials, and tests).
    pub async fn with_sdk_config(
        settings: Settings,
        sdk: aws_config::SdkConfig,
    ) -> Result<Self, StartupError> {
        Self::guarded(settings, sdk, GrantGuard::unrestricted()).await
    }

    async fn guarded(
        settings: Settings,
        sdk: aws_config::SdkConfig,
        guard: GrantGuard,
    ) -> Result<Self, StartupError> {
        let calls = CallCounter::default();
        let dynamo = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .interceptor(guard.clone())
                .build(),
        );
        let kms = aws_sdk_kms::Client::from_conf(
            aws_sdk_kms::config::Builder::from(&sdk)
                .interceptor(calls.clone())
                .interceptor(guard.clone())
                .build(),
        );
        let clients = notifier::Clients {
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .interceptor(guard.clone())
                    .build(),
            ),
            ses: aws_sdk_ses::Client::from_conf(
                aws_sdk_ses::config::Builder::from(&sdk)
                    .interceptor(calls.clone())
                    .interceptor(guard.clone())
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
        let code_keys = match settings.code_mac {
            CodeMacMode::Envelope if settings.data_key_id.is_some() => CodeKeys::envelope(
                stores.keys.clone(),
                crate::storage::CODE_MAC_KEYS,
                sealer.clone(),
                mac.clone(),
            ),
            // Without a data key nothing can be sealed: every code goes to KMS.
            CodeMacMode::Envelope | CodeMacMode::Kms => CodeKeys::kms(mac.clone()),
        };
        let outbox: Arc<dyn Outbox> = match &settings.outbox_queue_url {
            Some(url) => Arc::new(SqsOutbox::new(
                aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(&sdk)
                        .interceptor(calls.clone())
                        .interceptor(guard.clone())
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
            code_keys: Arc::new(code_keys),
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
        let mac: Arc<dyn CodeMac> = Arc::new(LocalCodeMac::random());
        Ok(Deps {
            settings: Arc::new(settings),
            clock,
            stores: Stores::memory(),
            hasher,
            mac: mac.clone(),
            code_keys: Arc::new(CodeKeys::kms(mac)),
            sealer: Arc::new(MemorySealer::default()),
            signer: Arc::new(SignerSlot::ready(Arc::new(LocalSigner::random()))),
            notifiers: Registry::default(),
            outbox: Arc::new(InlineOutbox),
            calls: CallCounter::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject as _;
    use sha2::{Digest as _, Sha256};

    /// The roots `amazon` mode trusts, parsed as the SDK parses them (it panics on a PEM it
    /// cannot read, at every start): exactly Amazon Trust Services' five, by SHA-256
    /// fingerprint as Amazon publishes them (https://www.amazontrust.com/repository/).
    #[test]
    fn the_compiled_in_roots_are_amazon_trust_services_five() {
        let ders = rustls_pki_types::CertificateDer::pem_slice_iter(
            AMAZON_TRUST_SERVICES_ROOTS.as_bytes(),
        )
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
        let fingerprints: Vec<String> = ders
            .iter()
            .map(|der| {
                Sha256::digest(der.as_ref())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert_eq!(
            fingerprints,
            [
                // Amazon Root CA 1 (RSA 2048), until 2038
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e",
                // Amazon Root CA 2 (RSA 4096), until 2040
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4",
                // Amazon Root CA 3 (ECDSA P-256), until 2040
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4",
                // Amazon Root CA 4 (ECDSA P-384), until 2040
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092",
                // Starfield Services Root Certificate Authority - G2, until 2037
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5",
            ]
        );
    }

    /// And they load into a root store as the SDK's client loads them at its first connection
    /// (an `expect` there: a root it cannot add would panic inside a request).
    #[test]
    fn the_compiled_in_roots_load_as_trust_anchors() {
        let mut roots = rustls::RootCertStore::empty();
        for der in
            rustls_pki_types::CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_ROOTS.as_bytes())
        {
            roots.add(der.unwrap()).unwrap();
        }
        assert_eq!(roots.len(), 5);
    }

    #[test]
    fn tls_roots_are_amazon_unless_system_is_asked_for() {
        assert_eq!(AwsTlsRoots::parse("system"), AwsTlsRoots::System);
        assert_eq!(AwsTlsRoots::parse(" system\n"), AwsTlsRoots::System);
        for text in ["amazon", "", "System", "none", "native"] {
            assert_eq!(AwsTlsRoots::parse(text), AwsTlsRoots::Amazon, "{text:?}");
        }
    }
}
