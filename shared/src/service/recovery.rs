//! Recovery codes (SPEC §4): 10 per set, 80 bits each (16 Crockford base32 characters shown as
//! `XXXX-XXXX-XXXX-XXXX`), shown once. Stored as a salted argon2id hash (ASVS 6.5.2: under 112
//! bits needs a slow salted hash) and found by a keyed tag (HMAC under the KMS code key), so a
//! redemption costs one argon2 verification, not ten. Each code is single use by a conditional
//! write; regenerating replaces the whole set in one transaction.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::crypto::{PasswordCheck, SecretString};
use crate::deps::Deps;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::method::Method;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::service::codes::{self, Verified};
use crate::service::second_factor::{self, Answer};
use crate::storage::{ChallengeRecord, RecoveryCodeRecord};

/// Crockford's base32: no I, L, O or U, so codes read aloud or copied by hand survive.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODE_CHARS: usize = 16;

fn generate_code() -> String {
    let mut rng = rand::rng();
    (0..CODE_CHARS)
        .map(|_| ALPHABET[rng.random_range(0..32)] as char)
        .collect()
}

fn display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

/// A code as typed: case-insensitive, hyphens and spaces ignored, I/L read as 1 and O as 0.
pub fn normalise(input: &str) -> Result<String, ApiError> {
    let code: String = input
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    if code.len() != CODE_CHARS || !code.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err(ApiError::validation(
            "code must be a recovery code like XXXX-XXXX-XXXX-XXXX.",
        ));
    }
    Ok(code)
}

async fn tag(deps: &Deps, user_id: &UserId, code: &str) -> Result<String, ApiError> {
    let mac = deps
        .mac
        .mac(format!("portcullis-recovery-v1\u{0}{user_id}\u{0}{code}").as_bytes())
        .await?;
    Ok(mac.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// Issues a new set (revoking the old one) and returns the codes, to be shown once.
/// How many of the user's recovery codes are still unused.
pub async fn remaining(deps: &Deps, user_id: &UserId) -> Result<u32, ApiError> {
    Ok(deps
        .stores
        .recovery
        .remaining_recovery_codes(user_id)
        .await?)
}

pub async fn issue(
    deps: &Deps,
    user_id: &UserId,
    from: &RequestMeta,
) -> Result<Vec<String>, ApiError> {
    let count = deps.settings.recovery_code_count as usize;
    let codes: Vec<String> = (0..count).map(|_| generate_code()).collect();
    let hasher = deps.hasher.clone();
    let to_hash = codes.clone();
    let hashes = tokio::task::spawn_blocking(move || {
        to_hash
            .iter()
            .map(|c| hasher.hash(c.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|_| ApiError::ServiceUnavailable)?
    .map_err(|err| {
        tracing::error!(error = %err, "hashing recovery codes failed");
        ApiError::ServiceUnavailable
    })?;
    let now = deps.clock.now();
    let mut records = Vec::with_capacity(count);
    for (code, hash) in codes.iter().zip(hashes) {
        records.push(RecoveryCodeRecord {
            user_id: user_id.clone(),
            tag: tag(deps, user_id, code).await?,
            hash,
            created_at: now,
            used_at: None,
        });
    }
    deps.stores
        .recovery
        .replace_recovery_codes(user_id, &records)
        .await?;
    tracing::info!(
        event = "recovery_codes_issued",
        count,
        "recovery codes issued"
    );
    audit::record(deps, user_id, Event::RecoveryCodesIssued { count }, from).await;
    Ok(codes.iter().map(|c| display(c)).collect())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemRequest {
    pub code: SecretString,
    #[serde(default)]
    pub trust_device: Option<bool>,
    #[serde(default)]
    pub device_name: Option<String>,
}

/// The codes as shown once. `Debug` never shows them.
#[derive(Clone, Serialize, PartialEq, Eq)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

debug_redacting!(RecoveryCodes { ; recovery_codes });

/// Redeems a recovery code for a challenge: counted as a try (like any code), verified, used
/// once, the challenge completed. Returns the proof and how many codes remain; alerts the user.
pub async fn redeem(
    deps: &Deps,
    challenge: &ChallengeRecord,
    code: &SecretString,
    from: &RequestMeta,
) -> Result<(Verified, u32), ApiError> {
    let code = normalise(code.expose())?;
    let user_id = &challenge.user_id;
    // The code's record is found by its keyed tag: computing it and reading the record compare
    // nothing, so they go while the answer is counted.
    // The code's tag (a KMS call) only once the challenge's try is won: at most one per try,
    // five per challenge, however many answers arrive at once or while the user is locked.
    let prepare = async {
        let Some(current) = codes::reserve_try(deps, challenge).await? else {
            return Ok::<_, ApiError>(None);
        };
        let tag = tag(deps, user_id, &code).await?;
        let record = deps
            .stores
            .recovery
            .get_recovery_code(user_id, &tag)
            .await?;
        Ok(Some((current, tag, record)))
    };
    let current = second_factor::guard(
        deps,
        user_id,
        Method::RecoveryCode,
        from,
        prepare,
        |prepared| async {
            let now = deps.clock.now();
            let Some((current, tag, record)) = prepared else {
                return Err(ApiError::ChallengeExpired);
            };
            let hasher = deps.hasher.clone();
            let stored = record
                .as_ref()
                .filter(|r| r.used_at.is_none())
                .map(|r| r.hash.clone());
            let secret = SecretString::new(code.clone());
            let check = tokio::task::spawn_blocking(move || match stored {
                Some(hash) => hasher.verify(&hash, secret.expose().as_bytes()),
                None => hasher.verify_dummy(secret.expose().as_bytes()),
            })
            .await
            .map_err(|_| ApiError::ServiceUnavailable)?;
            let won = matches!(check, PasswordCheck::Match { .. })
                && deps
                    .stores
                    .recovery
                    .use_recovery_code(user_id, &tag, now)
                    .await?
                && codes::finish_challenge(deps, &challenge.id_digest, now).await?;
            Ok(if won {
                Answer::Right(current)
            } else {
                Answer::Wrong {
                    challenge_ended: codes::was_last_try(deps, &current),
                }
            })
        },
    )
    .await?;
    let remaining = deps
        .stores
        .recovery
        .remaining_recovery_codes(user_id)
        .await?;
    tracing::warn!(
        event = "recovery_code_used",
        remaining,
        "recovery code used"
    );
    tokio::join!(
        audit::record(deps, user_id, Event::RecoveryCodeUsed { remaining }, from),
        alerts::alert(deps, user_id, Alert::RecoveryCodeUsed { remaining }),
    );
    Ok((
        Verified::by_code("recovery_code".into(), Method::RecoveryCode, current),
        remaining,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_and_read_back_leniently() {
        let code = generate_code();
        assert_eq!(code.len(), 16);
        const { assert!(CODE_CHARS * 5 >= 64, "at least 64 bits") };
        let shown = display(&code);
        assert_eq!(shown.len(), 19);
        assert_eq!(normalise(&shown.to_lowercase()).unwrap(), code);
        assert_eq!(
            normalise("ABCD-EFGH-JKMN-PQRS").unwrap(),
            "ABCDEFGHJKMNPQRS"
        );
        assert_eq!(
            normalise("oooo-iiii-llll-0000").unwrap(),
            "0000111111110000"
        );
        assert!(normalise("ABCD-EFGH-JKMN-PQR").is_err());
        assert!(
            normalise("ABCD-EFGH-JKMN-PQRU").is_err(),
            "U is not in the alphabet"
        );
    }
}
