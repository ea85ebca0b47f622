//! The ways a challenge is answered (domain: no AWS or HTTP type), as one enum: parsed once
//! where a request names one, and matched on everywhere after, so what each method is (sent by
//! the deployment or not, its `amr`, the channel its code goes by) is written here only.

use std::fmt;

/// A second-factor method, as requests and answers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// A code sent by text message.
    Sms,
    /// A code read out by a phone call.
    Voice,
    /// A code sent by email.
    Email,
    /// A code from an authenticator app (RFC 6238).
    Totp,
    /// One of the user's single-use recovery codes.
    RecoveryCode,
    /// A WebAuthn assertion of one of the user's passkeys.
    Passkey,
}

impl Method {
    /// Every method, in the order error messages list them.
    pub const ALL: [Method; 6] = [
        Method::Sms,
        Method::Voice,
        Method::Email,
        Method::Totp,
        Method::RecoveryCode,
        Method::Passkey,
    ];

    /// The methods whose code the deployment sends (and so count against the send limits).
    pub const SENT: [Method; 3] = [Method::Sms, Method::Voice, Method::Email];

    /// The methods answered with a 6-digit code at `…/verify`.
    pub const CODES: [Method; 4] = [Method::Sms, Method::Voice, Method::Email, Method::Totp];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Voice => "voice",
            Method::Email => "email",
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery_code",
            Method::Passkey => "passkey",
        }
    }

    /// The method a request names, if it is one.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The method named, if it is one of `allowed`; otherwise the 400 message that lists them
    /// ("method must be one of sms, voice, email.").
    pub fn parse_one_of(name: &str, allowed: &[Method]) -> Result<Method, String> {
        match Method::parse(name) {
            Some(method) if allowed.contains(&method) => Ok(method),
            _ => {
                let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
                Err(format!("method must be one of {}.", names.join(", ")))
            }
        }
    }

    /// Whether a user with these roles may answer with this method. Staff (any role) may not
    /// use email codes: their accounts approve other people's MFA resets and role changes, and
    /// a mailbox is the weakest factor (often reachable with the same password, or through the
    /// reset mailbox of another service). Enrolment refuses them one; this rule holds where an
    /// email factor enrolled before they became staff would otherwise still be used: the
    /// sign-in's methods, every send, and the completion of a sign-in or step-up.
    pub fn open_to(self, roles: &[String]) -> bool {
        self != Method::Email || roles.is_empty()
    }

    /// A code the deployment sends (text, call, email): a send comes before the answer.
    pub fn is_sent(self) -> bool {
        Method::SENT.contains(&self)
    }

    /// Whether a code that went by `channel` (`sms`, `voice`, `email`, as stored with it)
    /// answers this method: a texted or called code answers `sms` or `voice` alike (the same
    /// phone), an emailed one only `email`, and no sent code answers anything else.
    pub fn answers_sent_by(self, channel: &str) -> bool {
        match self {
            Method::Email => channel == "email",
            Method::Sms | Method::Voice => channel == "sms" || channel == "voice",
            Method::Totp | Method::RecoveryCode | Method::Passkey => false,
        }
    }

    /// Its RFC 8176 authentication method reference (a passkey's are its key and `user`,
    /// which the proof adds: see `codes::Verified::amr`).
    pub fn amr(self) -> &'static str {
        match self {
            Method::Sms => "sms",
            Method::Voice => "tel",
            // Unregistered in RFC 8176, allowed by it.
            Method::RecoveryCode => "recovery",
            Method::Email | Method::Totp => "otp",
            Method::Passkey => "user",
        }
    }
}

/// As its name (`"sms"`, …): how answers list it.
impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_back_from_its_name_and_nothing_else_does() {
        for method in Method::ALL {
            assert_eq!(Method::parse(method.as_str()), Some(method));
        }
        for other in [
            "",
            "SMS",
            "pigeon",
            "recovery-code",
            "sms ",
            "trusted device",
        ] {
            assert_eq!(Method::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn a_method_outside_the_allowed_ones_is_refused_with_the_list() {
        assert_eq!(
            Method::parse_one_of("totp", &Method::SENT),
            Err("method must be one of sms, voice, email.".to_owned())
        );
        assert_eq!(
            Method::parse_one_of("pigeon", &Method::CODES),
            Err("method must be one of sms, voice, email, totp.".to_owned())
        );
        assert_eq!(
            Method::parse_one_of("voice", &Method::CODES),
            Ok(Method::Voice)
        );
    }

    #[test]
    fn a_method_serialises_as_its_name() {
        for method in Method::ALL {
            let json = serde_json::to_value(method).unwrap();
            assert_eq!(json, serde_json::Value::String(method.as_str().into()));
        }
    }

    #[test]
    fn a_sent_code_answers_only_the_methods_of_its_channel() {
        assert!(Method::Sms.answers_sent_by("voice"));
        assert!(Method::Voice.answers_sent_by("sms"));
        assert!(!Method::Sms.answers_sent_by("email"));
        assert!(Method::Email.answers_sent_by("email"));
        assert!(!Method::Email.answers_sent_by("sms"));
        for method in [Method::Totp, Method::RecoveryCode, Method::Passkey] {
            for channel in ["sms", "voice", "email"] {
                assert!(!method.answers_sent_by(channel), "{method} by {channel}");
            }
        }
        let sent: Vec<Method> = Method::ALL.into_iter().filter(|m| m.is_sent()).collect();
        assert_eq!(sent, Method::SENT);
    }

    #[test]
    fn staff_may_use_every_method_but_email() {
        let staff = vec!["support".to_owned()];
        for method in Method::ALL {
            assert!(method.open_to(&[]), "{method} for a user without roles");
            assert_eq!(method.open_to(&staff), method != Method::Email, "{method}");
        }
    }
}
