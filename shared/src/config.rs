//! Typed settings, read once at cold start. Every number of the specification (docs/SPEC.md) is a setting with the SPEC
//! value as its default; the SAM template exposes each as a parameter and passes it to the
//! functions as the environment variable named here. A bad value fails start-up with the
//! variable's name. Secrets never live here: only resource names and KMS key ids.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Argon2id cost parameters (OWASP baseline by default: m = 19 MiB, t = 2, p = 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Settings {
    /// Parameters far below any safe level, so that unit and handler tests run fast. Never
    /// reachable from configuration: production reads [`Settings::from_env`].
    pub fn danger_cheap() -> Self {
        Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The main DynamoDB table (`PORTCULLIS_TABLE`).
    pub table_name: String,
    /// The append-only audit table (`PORTCULLIS_AUDIT_TABLE`; the main table if unset). Its own
    /// table so that IAM can grant the functions PutItem and Query on it, and nothing else.
    pub audit_table_name: String,
    /// Consecutive failed passwords that lock a user ID (SPEC §2: 5).
    pub lockout_threshold: u32,
    /// How long a lock lasts (SPEC §2: 30 minutes).
    pub lockout_secs: i64,
    /// How long a run of failures is remembered without a new failure before it is forgotten.
    /// The SPEC counts "consecutive" failures without a window; a bank-grade default keeps the
    /// run for 24 hours so that a slow guesser is still caught, while a user who mistypes once
    /// a month is never locked by old mistakes.
    pub failure_window_secs: i64,
    /// Lifetime of a sign-in challenge (SPEC §2: 10 minutes).
    pub challenge_ttl_secs: i64,
    pub argon2: Argon2Settings,
    /// Passwords longer than this many bytes are refused before hashing (bounded CPU per request).
    pub max_password_bytes: usize,
    /// Request bodies longer than this are refused with 413 before parsing.
    pub max_body_bytes: usize,
    /// One-time code lifetime (SPEC §3: 5 minutes).
    pub code_ttl_secs: i64,
    /// Code tries per challenge (SPEC §3: 5).
    pub max_code_tries: u32,
    /// Sends per challenge (SPEC §3: 5); the next request bars the user from sends.
    pub max_sends_per_challenge: u32,
    /// How long a user is barred from sends after the limit (SPEC §3: 30 minutes).
    pub send_lockout_secs: i64,
    /// Access token lifetime (SPEC §6: 5 minutes).
    pub access_token_secs: i64,
    /// Session inactivity limit (SPEC §6: 15 minutes).
    pub session_idle_secs: i64,
    /// Session absolute limit (SPEC §6: 12 hours).
    pub session_max_secs: i64,
    /// How long a fresh MFA counts as a step-up (SPEC §5: 5 minutes).
    pub step_up_secs: i64,
    /// Trusted-device lifetime (SPEC §5: 180 days).
    pub device_trust_secs: i64,
    /// Recovery codes per set (SPEC §4: 10).
    pub recovery_code_count: u32,
    /// How long delivery records and audit events are kept (default 400 days).
    pub retention_secs: i64,
    /// `iss` of access tokens; API Gateway's JWT authorizer is configured with the same value.
    pub token_issuer: String,
    /// `aud` of access tokens.
    pub token_audience: String,
    /// Issuer shown in authenticator apps.
    pub totp_issuer: String,
    /// KMS keys (ids or aliases): symmetric data key, P-256 signing key, HMAC key for codes.
    pub data_key_id: Option<String>,
    pub signing_key_id: Option<String>,
    /// How access tokens are signed: `envelope` (in process, the key sealed by the data key) or
    /// `kms` (KMS `Sign` with `signing_key_id`): see [`crate::signing`].
    pub token_signing: crate::signing::TokenSigning,
    /// The KMS HMAC key: recovery-code tags always, one-time codes in `kms` mode.
    pub code_key_id: Option<String>,
    /// How one-time codes are MACed: `envelope` (in process, the key sealed by the data key) or
    /// `kms` (KMS `GenerateMac` with `code_key_id`): see [`crate::code_keys`].
    pub code_mac: crate::code_keys::CodeMacMode,
    /// The SNS topic of the `sns-voice` plugin and the SES sender of the `email` plugin.
    pub voice_topic_arn: Option<String>,
    pub email_sender: Option<String>,
    /// `PORTCULLIS_OUTBOX_QUEUE_URL`: the SQS queue of alerts, reset links, invitations and
    /// unwritten audit events (SPEC §15), drained by the sender function. Unset: every message
    /// is delivered within its request (the in-process tools and tests).
    pub outbox_queue_url: Option<String>,
    /// `PORTCULLIS_NOTIFIERS`: JSON plugin configuration (defaults: SNS text, voice, SES email).
    pub notifiers_json: Option<String>,
    /// Passwords older than this must be changed after MFA; `None` (0) = off (SPEC §7 default).
    pub password_max_age_secs: Option<i64>,
    /// Password-reset links live this long (SPEC §7: 30 minutes).
    pub reset_ttl_secs: i64,
    /// Reset emails per user per hour; further requests still answer 202 but send nothing.
    pub max_resets_per_hour: u32,
    /// The page that receives `?token=…` from the reset email.
    pub reset_url: String,
    /// IDs with no sign-in for this long are deactivated by the sweep (SPEC §7: 90 days).
    pub inactive_after_secs: i64,
    /// Minimum browsers and systems (`PORTCULLIS_MIN_CLIENTS`, SPEC §2 item 5).
    pub min_clients: String,
    /// Invitations live this long (SPEC §8: 72 hours).
    pub invitation_ttl_secs: i64,
    /// The page that receives `?token=…` from the invitation email.
    pub invitation_url: String,
    /// An MFA-reset request must be approved within this (default 24 hours).
    pub mfa_reset_ttl_secs: i64,
    /// Failed sign-ins from one source IP that start a throttle (SPEC §8: 30 in 10 minutes).
    pub ip_failure_threshold: u32,
    /// The window of those failures, and the length of the throttle (SPEC §8: 10 minutes).
    pub ip_throttle_secs: i64,
    /// Second-factor answers without a success that lock the user's second factor (SPEC §12:
    /// 10), counted across every sign-in, enrolment and step-up challenge.
    pub mfa_failure_threshold: u32,
    /// How long a second-factor lock lasts (SPEC §12: 30 minutes).
    pub mfa_lockout_secs: i64,
    /// A run of wrong second-factor answers is forgotten only after this long without another
    /// answer (default 90 days: the SPEC resets the run only on a success or an admin unlock;
    /// the record needs some end, and an ID unused for 90 days is deactivated anyway).
    pub mfa_failure_window_secs: i64,
    /// Texts and calls per user per rolling hour, across every challenge (SPEC §12: 10).
    pub max_sends_per_hour: u32,
    /// Texts and calls per user per rolling day (SPEC §12: 20).
    pub max_sends_per_day: u32,
    /// Countries (ISO 3166 regions) whose numbers take text messages (SPEC §12: all).
    pub sms_countries: Countries,
    /// Countries whose numbers take voice calls (SPEC §12: US and Canada, by region: +1 876
    /// is Jamaica and gets text only).
    pub voice_countries: Countries,
    /// Passkeys (SPEC §13): the relying party ID (a registrable domain; `localhost` locally)
    /// and the exact origins allowed to use it. The name authenticators show is `totp_issuer`.
    pub passkey_rp_id: String,
    pub passkey_origins: Vec<String>,
}

/// A deployment's allow-list of countries, by ISO 3166-1 region code (`US`, `CA`, `GB`…), or
/// every country (`all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Countries {
    All,
    Only(std::collections::BTreeSet<String>),
}

impl Countries {
    /// `all`, or a comma-separated list of two-letter region codes.
    pub fn parse(raw: &str) -> Result<Countries, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("all") {
            return Ok(Countries::All);
        }
        let mut set = std::collections::BTreeSet::new();
        for code in raw.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!(
                    "{code:?} is not a two-letter region code (use e.g. US,CA or all)"
                ));
            }
            set.insert(code.to_ascii_uppercase());
        }
        if set.is_empty() {
            return Err("name at least one region, or all".into());
        }
        Ok(Countries::Only(set))
    }

    /// Whether numbers of `region` are allowed (a number whose region is unknown is allowed
    /// only when every country is).
    pub fn allows(&self, region: Option<&str>) -> bool {
        match (self, region) {
            (Countries::All, _) => true,
            (Countries::Only(set), Some(region)) => set.contains(region),
            (Countries::Only(_), None) => false,
        }
    }
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let table_name = lookup("PORTCULLIS_TABLE")
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing("PORTCULLIS_TABLE"))?;
        let settings = Settings {
            audit_table_name: optional(&lookup, "PORTCULLIS_AUDIT_TABLE")
                .unwrap_or_else(|| table_name.clone()),
            table_name,
            lockout_threshold: number(&lookup, "PORTCULLIS_LOCKOUT_THRESHOLD", 5)?,
            lockout_secs: minutes(&lookup, "PORTCULLIS_LOCKOUT_MINUTES", 30)?,
            failure_window_secs: minutes(&lookup, "PORTCULLIS_FAILURE_WINDOW_MINUTES", 24 * 60)?,
            challenge_ttl_secs: minutes(&lookup, "PORTCULLIS_CHALLENGE_TTL_MINUTES", 10)?,
            argon2: Argon2Settings {
                memory_kib: number(&lookup, "PORTCULLIS_ARGON2_MEMORY_KIB", 19 * 1024)?,
                iterations: number(&lookup, "PORTCULLIS_ARGON2_ITERATIONS", 2)?,
                parallelism: number(&lookup, "PORTCULLIS_ARGON2_PARALLELISM", 1)?,
            },
            max_password_bytes: number(&lookup, "PORTCULLIS_MAX_PASSWORD_BYTES", 1024)?,
            max_body_bytes: number(&lookup, "PORTCULLIS_MAX_BODY_BYTES", 16 * 1024)?,
            code_ttl_secs: minutes(&lookup, "PORTCULLIS_CODE_TTL_MINUTES", 5)?,
            max_code_tries: number(&lookup, "PORTCULLIS_MAX_CODE_TRIES", 5)?,
            max_sends_per_challenge: number(&lookup, "PORTCULLIS_MAX_SENDS_PER_CHALLENGE", 5)?,
            send_lockout_secs: minutes(&lookup, "PORTCULLIS_SEND_LOCKOUT_MINUTES", 30)?,
            access_token_secs: minutes(&lookup, "PORTCULLIS_ACCESS_TOKEN_MINUTES", 5)?,
            session_idle_secs: minutes(&lookup, "PORTCULLIS_SESSION_IDLE_MINUTES", 15)?,
            session_max_secs: minutes(&lookup, "PORTCULLIS_SESSION_MAX_HOURS", 12)? * 60,
            step_up_secs: minutes(&lookup, "PORTCULLIS_STEP_UP_MINUTES", 5)?,
            device_trust_secs: minutes(&lookup, "PORTCULLIS_DEVICE_TRUST_DAYS", 180)? * 24 * 60,
            recovery_code_count: number(&lookup, "PORTCULLIS_RECOVERY_CODE_COUNT", 10)?,
            retention_secs: minutes(&lookup, "PORTCULLIS_RETENTION_DAYS", 400)? * 24 * 60,
            token_issuer: text(
                &lookup,
                "PORTCULLIS_TOKEN_ISSUER",
                "https://auth.portcullis.example",
            ),
            token_audience: text(&lookup, "PORTCULLIS_TOKEN_AUDIENCE", "portcullis"),
            totp_issuer: text(&lookup, "PORTCULLIS_TOTP_ISSUER", "Portcullis"),
            data_key_id: optional(&lookup, "PORTCULLIS_DATA_KEY_ID"),
            signing_key_id: optional(&lookup, "PORTCULLIS_SIGNING_KEY_ID"),
            token_signing: key_mode(&lookup, "PORTCULLIS_TOKEN_SIGNING")?,
            code_key_id: optional(&lookup, "PORTCULLIS_CODE_KEY_ID"),
            code_mac: key_mode(&lookup, "PORTCULLIS_CODE_MAC")?,
            voice_topic_arn: optional(&lookup, "PORTCULLIS_VOICE_TOPIC_ARN"),
            email_sender: optional(&lookup, "PORTCULLIS_EMAIL_SENDER"),
            outbox_queue_url: optional(&lookup, "PORTCULLIS_OUTBOX_QUEUE_URL"),
            notifiers_json: optional(&lookup, "PORTCULLIS_NOTIFIERS"),
            password_max_age_secs: {
                let days: i64 = number(&lookup, "PORTCULLIS_PASSWORD_MAX_AGE_DAYS", 0)?;
                (days > 0).then_some(days * 86_400)
            },
            reset_ttl_secs: minutes(&lookup, "PORTCULLIS_RESET_TTL_MINUTES", 30)?,
            max_resets_per_hour: number(&lookup, "PORTCULLIS_MAX_RESETS_PER_HOUR", 3)?,
            reset_url: text(
                &lookup,
                "PORTCULLIS_RESET_URL",
                "https://auth.portcullis.example/reset",
            ),
            inactive_after_secs: minutes(&lookup, "PORTCULLIS_INACTIVE_DAYS", 90)? * 24 * 60,
            min_clients: text(
                &lookup,
                "PORTCULLIS_MIN_CLIENTS",
                crate::client::DEFAULT_MINIMUMS,
            ),
            invitation_ttl_secs: minutes(&lookup, "PORTCULLIS_INVITATION_TTL_HOURS", 72)? * 60,
            invitation_url: text(
                &lookup,
                "PORTCULLIS_INVITATION_URL",
                "https://auth.portcullis.example/welcome",
            ),
            mfa_reset_ttl_secs: minutes(&lookup, "PORTCULLIS_MFA_RESET_TTL_HOURS", 24)? * 60,
            ip_failure_threshold: number(&lookup, "PORTCULLIS_IP_FAILURE_THRESHOLD", 30)?,
            ip_throttle_secs: minutes(&lookup, "PORTCULLIS_IP_THROTTLE_MINUTES", 10)?,
            mfa_failure_threshold: number(&lookup, "PORTCULLIS_MFA_FAILURE_THRESHOLD", 10)?,
            mfa_lockout_secs: minutes(&lookup, "PORTCULLIS_MFA_LOCKOUT_MINUTES", 30)?,
            mfa_failure_window_secs: minutes(&lookup, "PORTCULLIS_MFA_FAILURE_WINDOW_DAYS", 90)?
                * 24
                * 60,
            max_sends_per_hour: number(&lookup, "PORTCULLIS_MAX_SENDS_PER_HOUR", 10)?,
            max_sends_per_day: number(&lookup, "PORTCULLIS_MAX_SENDS_PER_DAY", 20)?,
            sms_countries: countries(&lookup, "PORTCULLIS_SMS_COUNTRIES", "all")?,
            voice_countries: countries(&lookup, "PORTCULLIS_VOICE_COUNTRIES", "US,CA")?,
            passkey_rp_id: text(&lookup, "PORTCULLIS_PASSKEY_RP_ID", "localhost"),
            passkey_origins: text(
                &lookup,
                "PORTCULLIS_PASSKEY_ORIGINS",
                "http://localhost:3000",
            )
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect(),
        };
        settings.check()?;
        Ok(settings)
    }

    /// The passkey relying party of this deployment.
    pub fn passkey_config(&self) -> crate::passkey::PasskeyConfig {
        crate::passkey::PasskeyConfig {
            rp_id: self.passkey_rp_id.clone(),
            rp_name: self.totp_issuer.clone(),
            origins: self.passkey_origins.clone(),
        }
    }

    /// The SPEC defaults with the given table name (tests, benchmarks, the operator CLI).
    pub fn defaults(table_name: &str) -> Self {
        let table = table_name.to_owned();
        // The lookup below only ever sees valid defaults, so this cannot fail; fall back to a
        // literal copy of them rather than panic.
        match Self::from_lookup(|name| (name == "PORTCULLIS_TABLE").then(|| table.clone())) {
            Ok(settings) => settings,
            // Unreachable: the defaults are valid (a unit test checks). Fail at start-up, where
            // panicking is allowed, rather than run with half a configuration.
            Err(err) => panic!("default settings are invalid: {err}"),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |name: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                name,
                reason: reason.to_owned(),
            })
        };
        if self.lockout_threshold == 0 {
            return invalid("PORTCULLIS_LOCKOUT_THRESHOLD", "must be at least 1");
        }
        if self.argon2.memory_kib < 8 * self.argon2.parallelism.max(1) {
            return invalid(
                "PORTCULLIS_ARGON2_MEMORY_KIB",
                "must be at least 8 KiB per lane",
            );
        }
        if self.argon2.iterations == 0 {
            return invalid("PORTCULLIS_ARGON2_ITERATIONS", "must be at least 1");
        }
        if self.argon2.parallelism == 0 {
            return invalid("PORTCULLIS_ARGON2_PARALLELISM", "must be at least 1");
        }
        if self.max_password_bytes < 128 {
            return invalid(
                "PORTCULLIS_MAX_PASSWORD_BYTES",
                "must allow 128-character passwords",
            );
        }
        if self.max_code_tries == 0 || self.max_sends_per_challenge == 0 {
            return invalid(
                "PORTCULLIS_MAX_CODE_TRIES",
                "code tries and sends must be at least 1",
            );
        }
        if let Err(err) = self.passkey_config().validate() {
            return invalid("PORTCULLIS_PASSKEY_ORIGINS", &err.to_string());
        }
        if let Err(reason) = crate::client::Minimums::parse(&self.min_clients) {
            return invalid("PORTCULLIS_MIN_CLIENTS", &reason);
        }
        if self.mfa_failure_threshold == 0 {
            return invalid("PORTCULLIS_MFA_FAILURE_THRESHOLD", "must be at least 1");
        }
        if self.max_sends_per_hour == 0 || self.max_sends_per_day < self.max_sends_per_hour {
            return invalid(
                "PORTCULLIS_MAX_SENDS_PER_DAY",
                "sends per hour must be at least 1 and sends per day at least sends per hour",
            );
        }
        if self.max_body_bytes < 1024 {
            return invalid("PORTCULLIS_MAX_BODY_BYTES", "must be at least 1024");
        }
        Ok(())
    }
}

fn number<T: FromStr>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match lookup(name) {
        None => Ok(default),
        Some(raw) if raw.trim().is_empty() => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// The variable `name` (or `default`) read by `parse`; its refusal is the reason of
/// [`ConfigError::Invalid`].
fn parsed<T>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    parse(&text(lookup, name, default)).map_err(|reason| ConfigError::Invalid { name, reason })
}

fn countries(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<Countries, ConfigError> {
    parsed(lookup, name, default, Countries::parse)
}

/// Where a key is used ([`crate::signing::KeyMode`]): `envelope` when `name` is not set.
fn key_mode(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<crate::signing::KeyMode, ConfigError> {
    parsed(lookup, name, "envelope", crate::signing::KeyMode::parse)
}

fn text(lookup: &impl Fn(&str) -> Option<String>, name: &str, default: &str) -> String {
    optional(lookup, name).unwrap_or_else(|| default.to_owned())
}

fn optional(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn minutes(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default_minutes: i64,
) -> Result<i64, ConfigError> {
    let value: i64 = number(lookup, name, default_minutes)?;
    if value <= 0 {
        return Err(ConfigError::Invalid {
            name,
            reason: "must be a positive number of minutes".into(),
        });
    }
    Ok(value * 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_code_mac_mode_is_one_of_two() {
        let with = |mode: &str| {
            Settings::from_lookup(lookup(&[
                ("PORTCULLIS_TABLE", "t"),
                ("PORTCULLIS_CODE_MAC", mode),
            ]))
        };
        assert_eq!(
            with("kms").unwrap().code_mac,
            crate::code_keys::CodeMacMode::Kms
        );
        assert!(matches!(
            with("none"),
            Err(ConfigError::Invalid {
                name: "PORTCULLIS_CODE_MAC",
                ..
            })
        ));
    }

    #[test]
    fn defaults_are_the_spec_numbers() {
        let s = Settings::from_lookup(lookup(&[("PORTCULLIS_TABLE", "t")])).unwrap();
        assert_eq!(s.lockout_threshold, 5);
        assert_eq!(s.lockout_secs, 1800);
        assert_eq!(s.challenge_ttl_secs, 600);
        assert_eq!(
            s.argon2,
            Argon2Settings {
                memory_kib: 19456,
                iterations: 2,
                parallelism: 1
            }
        );
        assert_eq!(s.code_ttl_secs, 300);
        assert_eq!(s.code_mac, crate::code_keys::CodeMacMode::Envelope);
        assert_eq!(s.max_code_tries, 5);
        assert_eq!(s.max_sends_per_challenge, 5);
        assert_eq!(s.send_lockout_secs, 1800);
        assert_eq!(s.access_token_secs, 300);
        assert_eq!(s.session_idle_secs, 900);
        assert_eq!(s.session_max_secs, 12 * 3600);
        assert_eq!(s.step_up_secs, 300);
        assert_eq!(s.device_trust_secs, 180 * 86_400);
        assert_eq!(s.recovery_code_count, 10);
        assert_eq!(s.mfa_failure_threshold, 10);
        assert_eq!(s.mfa_lockout_secs, 1800);
        assert_eq!((s.max_sends_per_hour, s.max_sends_per_day), (10, 20));
        assert_eq!(s.sms_countries, Countries::All);
        assert!(s.voice_countries.allows(Some("US")) && s.voice_countries.allows(Some("CA")));
        assert!(!s.voice_countries.allows(Some("JM")) && !s.voice_countries.allows(None));
        assert_eq!(Settings::defaults("t"), s);
    }

    #[test]
    fn country_lists_are_region_codes_or_all() {
        assert_eq!(Countries::parse("ALL").unwrap(), Countries::All);
        let list = Countries::parse(" us, ca ,GB").unwrap();
        assert!(list.allows(Some("GB")) && !list.allows(Some("FR")));
        for bad in ["", ",", "USA", "U1", "+1"] {
            assert!(Countries::parse(bad).is_err(), "{bad}");
        }
        assert_refused("PORTCULLIS_VOICE_COUNTRIES", "+1");
    }

    /// Settings with `name` set to `value` are refused, with an error that names `name`.
    fn assert_refused(name: &str, value: &str) {
        let err =
            Settings::from_lookup(lookup(&[("PORTCULLIS_TABLE", "t"), (name, value)])).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }

    #[test]
    fn missing_table_names_the_variable() {
        let err = Settings::from_lookup(lookup(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable PORTCULLIS_TABLE is required"
        );
    }

    #[test]
    fn bad_number_names_the_variable() {
        assert_refused("PORTCULLIS_LOCKOUT_MINUTES", "half an hour");
        assert_refused("PORTCULLIS_LOCKOUT_THRESHOLD", "0");
    }

    #[test]
    fn a_key_mode_is_envelope_or_kms() {
        assert_refused("PORTCULLIS_TOKEN_SIGNING", "hsm");
        assert_refused("PORTCULLIS_CODE_MAC", "KMS");
    }
}
