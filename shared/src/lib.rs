//! Portcullis core crate: rules, ports, services, adapters and the wiring of every function.
//! The HTTP edge is the crate `portcullis-edge`, which depends on this one and not the other
//! way round: no module here can name a `lambda_http` type.
//!
//! - [`config`]: typed settings read once at cold start (every SPEC number is one).
//! - [`error`]: the one error enum and its single mapping to `application/problem+json`.
//! - [`clock`]: time as a parameter, so lockouts and TTLs are tested without sleeping.
//! - [`crypto`]: password hashing (argon2id), random tokens, keyed/unkeyed digests.
//! - [`identity`]: user-ID normalisation.
//! - [`method`]: the second-factor methods ([`method::Method`]), what each one is.
//! - [`challenge`]: a challenge's state ([`challenge::Stage`]), what it is for and waits for.
//! - [`storage`]: one trait per aggregate, a DynamoDB adapter and an in-memory adapter.
//! - [`service`]: one module per use case, independent of HTTP.
//! - [`request`]: what a service knows of its request ([`RequestMeta`]), passed as an argument.
//! - [`deps`]: the dependency builder used by every function at cold start.
//! - [`passkey`]: WebAuthn registration and authentication ceremonies (webauthn-rs-core).

/// `Debug` for a struct that holds secrets or personal data: the fields before `;` are shown,
/// the ones after it print as `<redacted>` (whatever their value, `None` included), so a
/// `{:?}` of the value, in a log line or a failed assertion, cannot leak them.
macro_rules! debug_redacting {
    ($ty:ident { $($shown:ident),* ; $($hidden:ident),* $(,)? }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($hidden), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

/// A challenge as one opener returned it: a newtype over the record, which only the opener's
/// module can make (its field is private), and which reads as the record (`Deref`).
macro_rules! opened_challenge {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(crate::storage::ChallengeRecord);

        impl std::ops::Deref for $ty {
            type Target = crate::storage::ChallengeRecord;

            fn deref(&self) -> &crate::storage::ChallengeRecord {
                &self.0
            }
        }
    };
}

pub mod challenge;
pub mod client;
pub mod clock;
pub mod code_keys;
pub mod config;
pub mod crypto;
pub mod deps;
pub mod error;
pub mod grants;
pub mod identity;
pub mod limits;
pub mod method;
pub mod metrics;
pub mod notifier;
pub mod outbox;
pub mod passkey;
pub mod phone;
pub mod policy;
pub mod request;
pub mod service;
pub mod signing;
pub mod storage;

pub use clock::{Clock, ManualClock, SystemClock, UnixTime};
pub use config::Settings;
pub use deps::Deps;
pub use error::ApiError;
pub use request::RequestMeta;
