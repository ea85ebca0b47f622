//! A challenge's state (domain: no AWS or HTTP type): what it was opened for and what it waits
//! for, as one enum. Each state carries exactly what it needs (a step-up its session, an
//! enrolment its factor and session), so no route can read a session ID off a sign-in or a
//! factor off a step-up, and a `match` on the stage must answer for every state.
//!
//! The stored form keeps the attributes earlier versions wrote (`purpose`, `status`,
//! `password_change_required`, `factor_id`, `session_id`): [`Stage::stored`] writes them and
//! [`Stage::from_stored`] reads them back, refusing a combination no version writes (a step-up
//! without its session, an unknown purpose) as corrupt.

/// Where a challenge stands. A challenge's stage is set when it opens and never changes: the
/// next step of a sign-in (the new password after MFA) is a new challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// A sign-in whose password was accepted, waiting for a second factor.
    /// `then_new_password`: the password must be changed once MFA is done (SPEC §2 item 4).
    SignInFactor { then_new_password: bool },
    /// A sign-in of a user with no active factor, waiting for the first one to be enrolled
    /// and proven (SPEC §12: never a second one on the password alone).
    SignInEnrolment { then_new_password: bool },
    /// A sign-in past its second factor that accepts only the new password the policy
    /// requires.
    SignInNewPassword,
    /// A fresh proof for a sensitive action inside the session `session_id`.
    StepUp { session_id: String },
    /// Proving the pending factor `factor_id`, enrolled from the session `session_id`.
    Enrolment {
        factor_id: String,
        session_id: String,
    },
    /// A passwordless passkey sign-in (SPEC §13), opened before anyone is known (its user is
    /// [`crate::identity::UserId::nobody`]). `then_new_password` is known once the assertion
    /// names the user.
    Passwordless { then_new_password: bool },
}

/// A stage as the adapters store it (the attributes of every earlier version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredStage<'a> {
    pub purpose: &'a str,
    pub status: &'a str,
    pub password_change_required: bool,
    pub factor_id: Option<&'a str>,
    pub session_id: Option<&'a str>,
}

const MFA_REQUIRED: &str = "mfa_required";
const MFA_ENROLMENT_REQUIRED: &str = "mfa_enrolment_required";
const PASSWORD_CHANGE_REQUIRED: &str = "password_change_required";

impl Stage {
    /// One of the steps of a sign-in with a password (the routes under `/v1/sign-in/{id}/…`).
    pub fn is_sign_in(&self) -> bool {
        matches!(
            self,
            Stage::SignInFactor { .. } | Stage::SignInEnrolment { .. } | Stage::SignInNewPassword
        )
    }

    /// The user's security stamp binds this challenge (a sign-in): a password change, reset or
    /// MFA reset since it opened ends it. Step-ups and enrolments are bound to a session
    /// instead, which those revoke; a passwordless one has no user until it completes.
    pub fn bound_to_stamp(&self) -> bool {
        self.is_sign_in()
    }

    /// Whether completing this challenge leads to a required password change, not a session.
    pub fn then_new_password(&self) -> bool {
        match self {
            Stage::SignInFactor { then_new_password }
            | Stage::SignInEnrolment { then_new_password }
            | Stage::Passwordless { then_new_password } => *then_new_password,
            Stage::SignInNewPassword | Stage::StepUp { .. } | Stage::Enrolment { .. } => false,
        }
    }

    /// Whether the password was proven before this challenge: every one but a passwordless
    /// sign-in (the `pwd` of `amr`).
    pub fn after_password(&self) -> bool {
        !matches!(self, Stage::Passwordless { .. })
    }

    /// Whether this challenge proves a new factor, and which: `Some(None)` for any pending
    /// factor of the user (a first enrolment at sign-in), `Some(Some(id))` for that one.
    pub fn enrols(&self) -> Option<Option<&str>> {
        match self {
            Stage::SignInEnrolment { .. } => Some(None),
            Stage::Enrolment { factor_id, .. } => Some(Some(factor_id)),
            _ => None,
        }
    }

    /// A step-up of the session `sid`.
    pub fn is_step_up_of(&self, sid: &str) -> bool {
        matches!(self, Stage::StepUp { session_id } if session_id == sid)
    }

    /// An enrolment of `factor` started from the session `sid`.
    pub fn is_enrolment_of(&self, factor: &str, sid: &str) -> bool {
        matches!(self, Stage::Enrolment { factor_id, session_id } if factor_id == factor && session_id == sid)
    }

    /// The `status` a sign-in answer names for this stage (the other stages are never named
    /// to a client: they store `mfa_required`, as every earlier version did).
    pub fn status(&self) -> &'static str {
        match self {
            Stage::SignInEnrolment { .. } => MFA_ENROLMENT_REQUIRED,
            Stage::SignInNewPassword => PASSWORD_CHANGE_REQUIRED,
            Stage::SignInFactor { .. }
            | Stage::StepUp { .. }
            | Stage::Enrolment { .. }
            | Stage::Passwordless { .. } => MFA_REQUIRED,
        }
    }

    /// The stored form.
    pub fn stored(&self) -> StoredStage<'_> {
        let (purpose, factor_id, session_id) = match self {
            Stage::SignInFactor { .. }
            | Stage::SignInEnrolment { .. }
            | Stage::SignInNewPassword => ("sign_in", None, None),
            Stage::StepUp { session_id } => ("step_up", None, Some(session_id.as_str())),
            Stage::Enrolment {
                factor_id,
                session_id,
            } => (
                "enrolment",
                Some(factor_id.as_str()),
                Some(session_id.as_str()),
            ),
            Stage::Passwordless { .. } => ("passwordless", None, None),
        };
        StoredStage {
            purpose,
            status: self.status(),
            password_change_required: self.then_new_password(),
            factor_id,
            session_id,
        }
    }

    /// The stage a stored form describes; `Err` (the reason) for a combination no version
    /// writes. Attributes a stage has no use for are ignored: earlier versions copied a
    /// passwordless sign-in's factor into its password-change step.
    pub fn from_stored(stored: StoredStage<'_>) -> Result<Stage, String> {
        let then_new_password = stored.password_change_required;
        let required = |name: &str, value: Option<&str>| {
            value
                .map(str::to_owned)
                .ok_or_else(|| format!("a {} challenge without its {name}", stored.purpose))
        };
        let only_mfa_required = |stage: Stage| match stored.status {
            MFA_REQUIRED => Ok(stage),
            other => Err(format!(
                "a {} challenge with status {other:?}",
                stored.purpose
            )),
        };
        match (stored.purpose, stored.status) {
            ("sign_in", MFA_REQUIRED) => Ok(Stage::SignInFactor { then_new_password }),
            ("sign_in", MFA_ENROLMENT_REQUIRED) => Ok(Stage::SignInEnrolment { then_new_password }),
            ("sign_in", PASSWORD_CHANGE_REQUIRED) => Ok(Stage::SignInNewPassword),
            ("sign_in", other) => Err(format!("unknown challenge status {other:?}")),
            ("step_up", _) => only_mfa_required(Stage::StepUp {
                session_id: required("session", stored.session_id)?,
            }),
            ("enrolment", _) => only_mfa_required(Stage::Enrolment {
                factor_id: required("factor", stored.factor_id)?,
                session_id: required("session", stored.session_id)?,
            }),
            ("passwordless", _) => only_mfa_required(Stage::Passwordless { then_new_password }),
            (other, _) => Err(format!("unknown challenge purpose {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_stage() -> Vec<Stage> {
        let mut stages = vec![
            Stage::SignInNewPassword,
            Stage::StepUp {
                session_id: "s_1".into(),
            },
            Stage::Enrolment {
                factor_id: "f_1".into(),
                session_id: "s_1".into(),
            },
        ];
        for then_new_password in [false, true] {
            stages.push(Stage::SignInFactor { then_new_password });
            stages.push(Stage::SignInEnrolment { then_new_password });
            stages.push(Stage::Passwordless { then_new_password });
        }
        stages
    }

    #[test]
    fn every_stage_reads_back_as_stored() {
        for stage in every_stage() {
            assert_eq!(Stage::from_stored(stage.stored()), Ok(stage.clone()));
        }
    }

    #[test]
    fn the_stored_form_is_the_one_earlier_versions_wrote() {
        let step_up = Stage::StepUp {
            session_id: "s_1".into(),
        };
        assert_eq!(
            step_up.stored(),
            StoredStage {
                purpose: "step_up",
                status: "mfa_required",
                password_change_required: false,
                factor_id: None,
                session_id: Some("s_1"),
            }
        );
        let enrolment = Stage::SignInEnrolment {
            then_new_password: true,
        };
        assert_eq!(enrolment.stored().purpose, "sign_in");
        assert_eq!(enrolment.stored().status, "mfa_enrolment_required");
        assert!(enrolment.stored().password_change_required);
        // The password-change step an earlier version copied from a passwordless sign-in,
        // with that sign-in's factor and flag still on it.
        let copied = StoredStage {
            purpose: "sign_in",
            status: "password_change_required",
            password_change_required: true,
            factor_id: Some("f_passkey"),
            session_id: None,
        };
        assert_eq!(Stage::from_stored(copied), Ok(Stage::SignInNewPassword));
    }

    #[test]
    fn a_combination_no_version_writes_is_refused() {
        let base = StoredStage {
            purpose: "step_up",
            status: "mfa_required",
            password_change_required: false,
            factor_id: None,
            session_id: None,
        };
        for refused in [
            base,
            StoredStage {
                purpose: "enrolment",
                session_id: Some("s_1"),
                ..base
            },
            StoredStage {
                purpose: "enrolment",
                factor_id: Some("f_1"),
                ..base
            },
            StoredStage {
                session_id: Some("s_1"),
                status: "password_change_required",
                ..base
            },
            StoredStage {
                purpose: "sign_in",
                status: "done",
                ..base
            },
            StoredStage {
                purpose: "reset",
                ..base
            },
        ] {
            assert!(Stage::from_stored(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn only_sign_in_stages_are_sign_ins_and_bound_to_the_stamp() {
        for stage in every_stage() {
            let sign_in = matches!(
                stage,
                Stage::SignInFactor { .. }
                    | Stage::SignInEnrolment { .. }
                    | Stage::SignInNewPassword
            );
            assert_eq!(stage.is_sign_in(), sign_in, "{stage:?}");
            assert_eq!(stage.bound_to_stamp(), sign_in, "{stage:?}");
            assert_eq!(
                stage.after_password(),
                !matches!(stage, Stage::Passwordless { .. }),
                "{stage:?}"
            );
        }
    }

    #[test]
    fn sessions_and_factors_bind_only_their_own_stage() {
        let step_up = Stage::StepUp {
            session_id: "s_1".into(),
        };
        assert!(step_up.is_step_up_of("s_1"));
        assert!(!step_up.is_step_up_of("s_2"));
        assert!(!step_up.is_enrolment_of("f_1", "s_1"));
        let enrolment = Stage::Enrolment {
            factor_id: "f_1".into(),
            session_id: "s_1".into(),
        };
        assert!(enrolment.is_enrolment_of("f_1", "s_1"));
        assert!(!enrolment.is_enrolment_of("f_2", "s_1"));
        assert!(!enrolment.is_enrolment_of("f_1", "s_2"));
        assert!(!enrolment.is_step_up_of("s_1"));
        assert_eq!(enrolment.enrols(), Some(Some("f_1")));
        assert_eq!(
            Stage::SignInEnrolment {
                then_new_password: false
            }
            .enrols(),
            Some(None)
        );
        assert_eq!(step_up.enrols(), None);
        assert_eq!(
            Stage::SignInFactor {
                then_new_password: false
            }
            .enrols(),
            None
        );
    }
}
