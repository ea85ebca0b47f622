//! One module per use case. Services take [`crate::Deps`] and plain inputs, return plain
//! outputs or an [`crate::ApiError`]. They do not parse requests or build responses (this crate
//! does not depend on `lambda_http`): they take [`crate::request::RequestMeta`] (source IP, User-Agent,
//! trusted-device token, route) as an argument — on a public route the request's, on a session
//! route the [`tokens::Caller`]'s `from` — and hand it to [`audit::record`], which requires it,
//! so every security event carries the caller it came from; only what no request causes (the
//! inactivity sweep) uses [`audit::record_by_system`]. No service learns its caller any other
//! way (there is no task-local).

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod codes;
pub mod complete;
pub mod devices;
pub mod factors;
pub mod limits;
pub mod operator;
pub mod passkeys;
pub mod password;
pub mod recovery;
pub mod second_factor;
pub mod sender;
pub mod sign_in;
pub mod step_up;
pub mod sweep;
pub mod tokens;

/// Each answer's `status` is its type's tag (or a typed enum's name): these pin the words the
/// contract gives, so a renamed tag or variant fails here, not in a client.
#[cfg(test)]
mod answer_status_tests {
    use serde_json::{Value, json};

    use super::admin::{Approved, PendingApproval, RequestStatus};
    use super::factors::{EnrolPhoneAnswer, EnrolTotpAnswer};
    use super::passkeys::EnrolPasskeyAnswer;
    use super::password::FORGOT_ANSWER;
    use super::step_up::Elevated;
    use crate::identity::UserId;
    use crate::storage::{FactorStatus, RequestKind, UserStatus};

    fn status(answer: impl serde::Serialize) -> Value {
        serde_json::to_value(answer).unwrap()["status"].clone()
    }

    #[test]
    fn single_status_answers_carry_their_tag_once() {
        let phone = EnrolPhoneAnswer {
            factor_id: "f".into(),
            sent_to: "+4*******89".into(),
            sends_remaining: 4,
            expires_in: 300,
        };
        let totp = EnrolTotpAnswer {
            factor_id: "f".into(),
            secret: "S".into(),
            otpauth_uri: "otpauth://totp/x".into(),
            qr_png_base64: String::new(),
            qr_svg: String::new(),
        };
        let passkey = EnrolPasskeyAnswer {
            factor_id: "f".into(),
            options: json!({}),
        };
        let elevated = Elevated {
            access_token: "t".into(),
            token_type: "Bearer",
            expires_in: 300,
            recovery_codes_remaining: None,
        };
        let pending = PendingApproval {
            request_id: "r".into(),
            kind: RequestKind::MfaReset,
            expires_at: 1,
        };
        let approved = Approved {
            request_id: "r".into(),
            kind: RequestKind::MfaReset,
            user_id: UserId::parse("jo.doe").unwrap(),
            invitation: None,
        };
        assert_eq!(status(&phone), "pending");
        assert_eq!(status(&totp), "pending");
        assert_eq!(status(&passkey), "pending");
        assert_eq!(status(FORGOT_ANSWER), "accepted");
        assert_eq!(status(&elevated), "elevated");
        assert_eq!(status(&pending), "pending_approval");
        assert_eq!(status(&approved), "approved");
        // The tag sits beside the fields, once: nothing nested, nothing doubled.
        let text = serde_json::to_string(&elevated).unwrap();
        assert_eq!(text.matches("\"status\"").count(), 1, "{text}");
        assert_eq!(serde_json::to_value(&pending).unwrap()["kind"], "mfa_reset");
    }

    #[test]
    fn typed_statuses_answer_the_words_stored() {
        for s in [UserStatus::Active, UserStatus::Inactive] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in [FactorStatus::Pending, FactorStatus::Active] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            serde_json::to_value(RequestStatus::Pending).unwrap(),
            "pending"
        );
        assert_eq!(
            serde_json::to_value(RequestStatus::Approved).unwrap(),
            "approved"
        );
    }
}
