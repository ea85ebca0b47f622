//! What the operator CLI (`portcullis-admin`) does to users: create one with a password (the
//! first admin, who then invites everyone else from the console) and unlock one. An operator
//! holds AWS credentials for the table and could write it by hand; these are the paths that
//! keep the product's rules when they do not: the password policy of SPEC §7, the roles of
//! the admin API, a validated email and phone, and an audit event with `operator` as actor,
//! so an unlock or a user made outside the API shows in the user's and the admins' event lists.
//!
//! The operator's name recorded in the event's detail is what the CLI reports (its OS user):
//! the AWS credentials that made the write are in CloudTrail, not here.

use crate::crypto::SecretString;
use crate::deps::Deps;
use crate::error::{ApiError, StoreError};
use crate::identity::UserId;
use crate::policy;
use crate::service::admin::parse_roles;
use crate::service::audit::{self, Event};
use crate::service::limits;
use crate::storage::{CounterKey, UserRecord};

/// A user to create, as the operator gave it.
pub struct NewUser<'a> {
    pub user_id: &'a str,
    pub email: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub roles: Vec<String>,
    pub password: SecretString,
}

/// Creates an active user with a password (no factor yet: the first sign-in requires MFA
/// enrolment). The user ID, email, phone and roles are checked as the admin API checks them,
/// and the password against the policy; `conflict` if the ID is taken. Audited.
pub async fn create_user(
    deps: &Deps,
    new: NewUser<'_>,
    operator: &str,
) -> Result<UserRecord, ApiError> {
    let user_id = UserId::parse(new.user_id)?;
    let email = new.email.map(policy::email_address).transpose()?;
    let phone = match new.phone {
        Some(p) => Some(crate::phone::Phone::parse(p)?.e164().to_owned()),
        None => None,
    };
    let roles = parse_roles(Some(new.roles))?;
    policy::check(&deps.hasher, new.password.expose(), &user_id, None, &[]).await?;
    let hash = crate::service::password::hash_new(deps, &new.password).await?;
    let now = deps.clock.now();
    let user = UserRecord::new_active(user_id.clone(), email, phone, roles, Some(hash), now);
    match deps.stores.users.create_user(&user).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed) => {
            return Err(ApiError::Conflict("This user ID already exists.".into()));
        }
        Err(err) => return Err(err.into()),
    }
    let roles = user.roles.join(", ");
    let event = Event::OperatorCreatedUser {
        operator,
        roles: &roles,
    };
    audit::record_by_system(deps, &user_id, event).await;
    Ok(user)
}

/// Ends both locks of a user (the password's and the second factor's), as an admin's unlock
/// does; `not_found` for an unknown user ID. Audited.
pub async fn unlock(deps: &Deps, user_id: &str, operator: &str) -> Result<UserId, ApiError> {
    let user_id = UserId::parse(user_id)?;
    if deps.stores.users.get_user(&user_id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    limits::clear(deps, CounterKey::Password(&user_id)).await?;
    limits::clear(deps, CounterKey::SecondFactor(&user_id)).await?;
    audit::record_by_system(deps, &user_id, Event::OperatorUnlocked { operator }).await;
    Ok(user_id)
}
