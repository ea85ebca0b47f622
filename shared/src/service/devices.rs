//! Trusted devices (SPEC §5): "trust this device" issues a random token (only its SHA-256 is
//! stored) valid 180 days; presenting it with the right password skips MFA — except for admins
//! and when a password change is due. Expiry is checked on every read. Users list and remove
//! their devices; a password change or MFA reset removes them all.

use serde::Serialize;

use crate::crypto::{SecretString, constant_time_eq, random_id, random_token, token_digest};
use crate::deps::Deps;
use crate::error::ApiError;
use crate::identity::UserId;
use crate::request::RequestMeta;
use crate::service::alerts::{self, Alert};
use crate::service::audit::{self, Event};
use crate::storage::DeviceRecord;

/// Issues a device token for the user and alerts them. `from`: the request that asked (its
/// User-Agent names the device when the user gave no name).
pub async fn trust(
    deps: &Deps,
    user_id: &UserId,
    device_name: Option<&str>,
    from: &RequestMeta,
) -> Result<String, ApiError> {
    let now = deps.clock.now();
    let device_id = random_id("d");
    let secret = random_token();
    let name = device_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().filter(|c| !c.is_control()).take(100).collect())
        .unwrap_or_else(|| describe_user_agent(from.user_agent.as_deref().unwrap_or("")));
    let record = DeviceRecord {
        user_id: user_id.clone(),
        device_id: device_id.clone(),
        token_digest: token_digest(&secret),
        name: name.clone(),
        created_at: now,
        last_used_at: now,
        expires_at: now.plus_secs(deps.settings.device_trust_secs),
    };
    deps.stores.devices.create_device(&record).await?;
    tracing::info!(event = "device_trusted", "device trusted");
    tokio::join!(
        audit::record(deps, user_id, Event::DeviceTrusted { name: &name }, from),
        alerts::alert(
            deps,
            user_id,
            Alert::NewTrustedDevice { name: name.clone() }
        ),
    );
    Ok(format!("{device_id}.{secret}"))
}

/// The trusted device a token names, if the token is valid for this user now: one read,
/// nothing written (the sign-in reads it beside the user, before the password is checked,
/// and marks it used with [`touch`] only once the device has skipped MFA).
pub async fn recognise(
    deps: &Deps,
    user_id: &UserId,
    token: &SecretString,
) -> Result<Option<DeviceRecord>, ApiError> {
    let Some((device_id, secret)) = token.expose().split_once('.') else {
        return Ok(None);
    };
    if device_id.is_empty() || device_id.len() > 64 || secret.len() > 128 {
        return Ok(None);
    }
    let now = deps.clock.now();
    let Some(device) = deps
        .stores
        .devices
        .get_device(user_id, device_id, now)
        .await?
    else {
        return Ok(None);
    };
    Ok(names(&device, token).then_some(device))
}

/// Records that a recognised device was just used (its last-used time): `false` when the
/// device has been removed (or replaced, or has expired) since [`recognise`] read it.
pub async fn touch(deps: &Deps, device: &DeviceRecord) -> Result<bool, ApiError> {
    let now = deps.clock.now();
    Ok(deps
        .stores
        .devices
        .touch_device(
            &device.user_id,
            &device.device_id,
            &device.token_digest,
            now,
        )
        .await?)
}

/// Whether `token` is this device's token (its id, and its secret compared in constant time).
fn names(device: &DeviceRecord, token: &SecretString) -> bool {
    match token.expose().split_once('.') {
        Some((device_id, secret)) if device_id == device.device_id && secret.len() <= 128 => {
            constant_time_eq(
                token_digest(secret).as_bytes(),
                device.token_digest.as_bytes(),
            )
        }
        _ => false,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceView {
    pub device_id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    /// The device whose token came with this request (`X-Device-Token`), so a client can tell
    /// which entry is itself.
    pub current: bool,
}

/// The user's unexpired devices; `presented` is the request's device token, if any.
pub async fn list(
    deps: &Deps,
    user_id: &UserId,
    presented: Option<&SecretString>,
) -> Result<Vec<DeviceView>, ApiError> {
    Ok(deps
        .stores
        .devices
        .list_devices(user_id, deps.clock.now())
        .await?
        .into_iter()
        .map(|d| DeviceView {
            current: presented.is_some_and(|t| names(&d, t)),
            device_id: d.device_id,
            name: d.name,
            created_at: d.created_at.secs(),
            last_used_at: d.last_used_at.secs(),
            expires_at: d.expires_at.secs(),
        })
        .collect())
}

pub async fn remove(
    deps: &Deps,
    user_id: &UserId,
    device_id: &str,
    from: &RequestMeta,
) -> Result<(), ApiError> {
    if !deps
        .stores
        .devices
        .delete_device(user_id, device_id)
        .await?
    {
        return Err(ApiError::NotFound);
    }
    tracing::info!(event = "device_removed", "trusted device removed");
    audit::record(deps, user_id, Event::DeviceRemoved, from).await;
    Ok(())
}

pub async fn remove_all(
    deps: &Deps,
    user_id: &UserId,
    from: &RequestMeta,
) -> Result<u32, ApiError> {
    let removed = deps.stores.devices.delete_all_devices(user_id).await?;
    tracing::info!(
        event = "devices_removed",
        removed,
        "all trusted devices removed"
    );
    audit::record(
        deps,
        user_id,
        Event::DevicesRemoved { count: removed },
        from,
    )
    .await;
    Ok(removed)
}

/// "Chrome on Windows": a readable name for a device, from its User-Agent.
pub fn describe_user_agent(ua: &str) -> String {
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "Browser"
    };
    let os = if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Mac OS X") {
        "macOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        "an unknown system"
    };
    format!("{browser} on {os}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_user_agent() {
        assert_eq!(
            describe_user_agent(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
            ),
            "Chrome on Windows"
        );
        assert_eq!(
            describe_user_agent(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iOS"
        );
        assert_eq!(describe_user_agent(""), "Browser on an unknown system");
    }
}
