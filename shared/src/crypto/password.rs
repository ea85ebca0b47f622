//! Password hashing with argon2id in PHC string format.
//!
//! - Parameters come from settings (OWASP baseline m = 19 MiB, t = 2, p = 1); a stored hash made
//!   with other parameters still verifies, and [`PasswordCheck::Match`] says when it should be
//!   rehashed with the current ones.
//! - The argon2 working memory is allocated once per execution environment, at its first hash,
//!   and reused: a small pool of buffers (a Lambda environment serves one request at a time, so
//!   it holds one). Functions that never hash (tokens, devices, …) never allocate it.
//! - Unknown users cost the same: [`PasswordHasher::verify_dummy`] runs a full verification
//!   against a dummy PHC string with the current parameters, a random salt and a random output
//!   (no password can match it; making it costs no hash, so no function pays one at start-up).
//! - Hashing is CPU-bound: async callers run it with `tokio::task::spawn_blocking`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use super::{constant_time_eq, random_bytes};
use crate::config::Argon2Settings;

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;
/// Buffers kept for reuse; more concurrent hashes than this allocate and free their own.
const POOL_LIMIT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("argon2 failed: {0}")]
    Argon2(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password is right; `needs_rehash` when the stored hash used other parameters.
    Match {
        needs_rehash: bool,
    },
    Mismatch,
}

/// The PHC string of an argon2id output.
fn phc(p: &Params, salt: &[u8], out: &[u8]) -> String {
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        p.m_cost(),
        p.t_cost(),
        p.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    )
}

/// `Debug` shows the parameters only: the pool holds working memory of earlier hashes.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

struct Inner {
    params: Params,
    dummy_phc: String,
    pool: Mutex<Vec<Vec<Block>>>,
    /// Argon2 computations done (hashes and verifications, dummy ones included).
    computed: AtomicU64,
}

impl PasswordHasher {
    /// Builds the hasher: checks the parameters and makes the dummy PHC string (no hash, no
    /// working memory yet).
    pub fn new(settings: Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            Some(OUTPUT_LEN),
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let dummy_phc = phc(
            &params,
            &random_bytes::<SALT_LEN>(),
            &random_bytes::<OUTPUT_LEN>(),
        );
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                dummy_phc,
                pool: Mutex::new(Vec::new()),
                computed: AtomicU64::new(0),
            }),
        })
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) for `password`.
    pub fn hash(&self, password: &[u8]) -> Result<String, HashError> {
        let salt = random_bytes::<SALT_LEN>();
        let mut out = [0u8; OUTPUT_LEN];
        self.compute(&self.inner.params, password, &salt, &mut out)?;
        Ok(phc(&self.inner.params, &salt, &out))
    }

    /// Checks `password` against a stored PHC string, in constant time for the comparison.
    /// A stored value that is not a valid argon2id PHC string never matches (and still costs a
    /// full hash, so it cannot be told apart by timing).
    pub fn verify(&self, phc: &str, password: &[u8]) -> PasswordCheck {
        let Some((params, salt, expected)) = parse_phc(phc) else {
            tracing::error!("stored password hash is not a valid argon2id PHC string");
            self.verify_dummy(password);
            return PasswordCheck::Mismatch;
        };
        let mut out = vec![0u8; expected.len()];
        if let Err(err) = self.compute(&params, password, &salt, &mut out) {
            tracing::error!(error = %err, "argon2 verification failed");
            return PasswordCheck::Mismatch;
        }
        if constant_time_eq(&out, &expected) {
            let current = &self.inner.params;
            let needs_rehash = params.m_cost() != current.m_cost()
                || params.t_cost() != current.t_cost()
                || params.p_cost() != current.p_cost()
                || expected.len() != OUTPUT_LEN;
            PasswordCheck::Match { needs_rehash }
        } else {
            PasswordCheck::Mismatch
        }
    }

    /// Spends the same work as a real verification and always fails: used for unknown users.
    pub fn verify_dummy(&self, password: &[u8]) -> PasswordCheck {
        let _ = self.verify(&self.inner.dummy_phc, password);
        PasswordCheck::Mismatch
    }

    /// How many argon2 computations this hasher has run (for tests and metrics).
    pub fn computations(&self) -> u64 {
        self.inner.computed.load(Ordering::Relaxed)
    }

    fn compute(
        &self,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        self.inner.computed.fetch_add(1, Ordering::Relaxed);
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut memory = self.take_buffer(params.block_count());
        let result = argon
            .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
            .map_err(|e| HashError::Argon2(e.to_string()));
        self.return_buffer(memory);
        result
    }

    fn take_buffer(&self, blocks: usize) -> Vec<Block> {
        let pooled = self.inner.pool.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(buffer) if buffer.len() >= blocks => buffer,
            _ => vec![Block::new(); blocks],
        }
    }

    fn return_buffer(&self, buffer: Vec<Block>) {
        if buffer.len() < self.inner.params.block_count() {
            return;
        }
        if let Ok(mut pool) = self.inner.pool.lock()
            && pool.len() < POOL_LIMIT
        {
            pool.push(buffer);
        }
    }
}

/// Parses an argon2id v19 PHC string into parameters, salt and expected output.
fn parse_phc(phc: &str) -> Option<(Params, Vec<u8>, Vec<u8>)> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm.as_str() != "argon2id" {
        return None;
    }
    if parsed.version.is_some_and(|v| v != 0x13) {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    let salt = parsed.salt.as_ref()?.as_ref().to_vec();
    let expected = parsed.hash.as_ref()?.as_bytes().to_vec();
    // Bound the work a corrupted or hostile stored value can ask for.
    if params.m_cost() > 1024 * 1024 || params.t_cost() > 64 || params.p_cost() > 16 {
        return None;
    }
    Some((params, salt, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn danger_cheap() -> Argon2Settings {
        Argon2Settings::danger_cheap()
    }

    #[test]
    fn hash_is_phc_argon2id_with_the_configured_parameters() {
        let h = PasswordHasher::new(Argon2Settings {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        let phc = h.hash(b"correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify(&phc, b"correct horse battery staple"),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify(&phc, b"correct horse battery stapl"),
            PasswordCheck::Mismatch
        );
    }

    #[test]
    fn hashes_from_the_reference_implementation_verify() {
        // Made with the argon2 crate's own PasswordHasher (salt "saltsaltsaltsalt").
        let h = PasswordHasher::new(danger_cheap()).unwrap();
        let reference = {
            let params = Params::new(64, 1, 1, Some(32)).unwrap();
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
            let mut out = [0u8; 32];
            argon
                .hash_password_into(b"pw-123456789012", b"saltsaltsaltsalt", &mut out)
                .unwrap();
            format!(
                "$argon2id$v=19$m=64,t=1,p=1${}${}",
                STANDARD_NO_PAD.encode(b"saltsaltsaltsalt"),
                STANDARD_NO_PAD.encode(out)
            )
        };
        assert!(PasswordHash::new(&reference).is_ok());
        assert_eq!(
            h.verify(&reference, b"pw-123456789012"),
            PasswordCheck::Match {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn old_parameters_verify_and_ask_for_a_rehash() {
        let old = PasswordHasher::new(danger_cheap()).unwrap();
        let phc = old.hash(b"a long enough password").unwrap();
        let new = PasswordHasher::new(Argon2Settings {
            memory_kib: 128,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            new.verify(&phc, b"a long enough password"),
            PasswordCheck::Match { needs_rehash: true }
        );
        assert_eq!(new.verify(&phc, b"wrong"), PasswordCheck::Mismatch);
    }

    #[test]
    fn garbage_and_other_algorithms_never_match() {
        let h = PasswordHasher::new(danger_cheap()).unwrap();
        assert_eq!(h.verify("", b"x"), PasswordCheck::Mismatch);
        assert_eq!(
            h.verify(
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                b"x"
            ),
            PasswordCheck::Mismatch
        );
        assert_eq!(h.verify("plaintext", b"plaintext"), PasswordCheck::Mismatch);
    }

    #[test]
    fn dummy_verification_never_matches_and_costs_one_hash() {
        let h = PasswordHasher::new(danger_cheap()).unwrap();
        let before = h.computations();
        assert_eq!(h.verify_dummy(b""), PasswordCheck::Mismatch);
        assert_eq!(h.computations(), before + 1);
    }

    #[test]
    fn salts_differ_between_hashes() {
        let h = PasswordHasher::new(danger_cheap()).unwrap();
        assert_ne!(
            h.hash(b"same password 1").unwrap(),
            h.hash(b"same password 1").unwrap()
        );
    }
}
