// The one place that turns an API error into words for people. Branch on the stable `code` of the
// problem+json answer (never on its title); the server's `detail` is shown only where it is the
// useful part (the rule a new password broke, the browsers that are supported).
// The browser's own passkey exceptions arrive here as codes too (passkey_*, from passkey.js):
// their text is never shown.

import { localhostAddress, onIpAddress } from './passkey.js';

/** The SPEC §3 wording for the sixth send request, verbatim. */
export const SEND_LIMIT_MESSAGE =
  'We can no longer send a code: you have reached the maximum attempts for sending a code to one of your devices. Sign out, wait 30 minutes and sign in again.';

function minutes(seconds, fallback) {
  if (!Number.isFinite(seconds) || seconds <= 0) return fallback;
  const m = Math.ceil(seconds / 60);
  return m === 1 ? '1 minute' : `${m} minutes`;
}

function seconds(value) {
  if (!Number.isFinite(value) || value <= 0) return 'a few seconds';
  if (value < 90) return value === 1 ? '1 second' : `${value} seconds`;
  return minutes(value, 'a few minutes');
}

const MESSAGES = {
  invalid_credentials: () =>
    'The user ID or password is not correct. Check them and try again. After 5 failed attempts in a row the user ID is locked for 30 minutes.',
  // Two locks share the code: the password's and the second factor's (too many wrong codes).
  // The server's detail says which, with the time left.
  locked: (e) =>
    e.detail ||
    `Too many failed sign-in attempts: this user ID is locked. Try again in ${minutes(e.retryAfter, '30 minutes')}.`,
  // The challenge's 5 sends (the exact wording above), or the hourly or daily cap of texts
  // and calls: the server's detail says which.
  send_limit_reached: (e) => e.detail || SEND_LIMIT_MESSAGE,
  code_invalid: () =>
    'That code is not correct or has expired. Check it and try again. After 5 wrong codes you will have to start again.',
  challenge_expired: () =>
    'This attempt has expired or has ended (for example after 5 wrong codes). Please start again.',
  step_up_required: () => 'For your security, this change needs a fresh verification code.',
  // An administrator's deactivation or the inactivity sweep: the API does not say which.
  account_inactive: () =>
    'This user ID has been deactivated, by us or because it was not used for a long time. Please contact us to reactivate it.',
  unsupported_client: (e) =>
    `Your browser is not supported, please update it. ${e.detail || ''}`.trim(),
  voice_not_supported: () =>
    'Voice calls are only available for US and Canada numbers. Please choose a text message instead.',
  country_not_supported: () =>
    'We cannot send codes to numbers in this country. Please use another number or an authenticator app.',
  rate_limited: (e) =>
    `Too many attempts from your network. Please wait ${minutes(e.retryAfter, '10 minutes')} and try again.`,
  service_unavailable: (e) =>
    `The service is temporarily unavailable and nothing was changed. Please try again in ${seconds(e.retryAfter)}.`,
  validation_failed: (e) =>
    e.detail ? `Please check what you entered: ${e.detail}` : 'Please check what you entered and try again.',
  conflict: (e) =>
    e.detail ? `This can't be done right now: ${e.detail}` : "This can't be done right now because something changed. Please reload and try again.",
  not_found: () => 'We could not find that item. It may already have been removed.',
  forbidden: () => "You are not allowed to do this. If you were in the middle of signing in, please start again.",
  unauthorized: () => 'Your session has ended. Please sign in again.',
  payload_too_large: () => 'What you entered is too long.',
  unsupported_media_type: () => 'Something went wrong on our side. Please try again later.',
  method_not_allowed: () => 'Something went wrong on our side. Please try again later.',
  network: () => 'We could not reach the service. Check your internet connection and try again.',
  step_up_cancelled: () => 'Nothing was changed: the verification was cancelled.',
  // The browser's passkey call (passkey.js), not the API.
  passkey_cancelled: () =>
    'The passkey was not used: the request was cancelled or timed out. Try again when you are ready, or choose another way.',
  passkey_aborted: () => 'The passkey request was stopped.',
  passkey_exists: () =>
    'This device or security key already has a passkey for your account. Use it to sign in, or add a passkey on another device.',
  // SecurityError: the page's address is not one the passkeys were made for.
  passkey_wrong_address: () => (onIpAddress()
    ? `Passkeys need the page opened at ${localhostAddress()}`
    : 'Passkeys cannot be used at this address of the site. Choose another way.'),
  passkey_unsupported: () => 'This browser cannot use passkeys. Choose another way, or update your browser.',
  passkey_failed: () => 'The passkey could not be used. Please try again, or choose another way.',
};

// Where the same code means something more precise.
const IN_CONTEXT = {
  changePassword: {
    invalid_credentials: () => 'Your current password is not correct. Nothing was changed.',
  },
  reset: {
    // The detail says which rule the password broke, or that the link is not valid any more.
    validation_failed: (e) => e.detail || 'The new password was not accepted.',
  },
  // Passwordless sign-in: every refusal of the API is the same invalid_credentials.
  passkeySignIn: {
    invalid_credentials: () =>
      'We could not sign you in with this passkey. It may have been removed from your account. Sign in with your user ID and password instead.',
    passkey_cancelled: () => 'No passkey was used. Choose a passkey when your browser asks, or sign in with your user ID and password.',
  },
  // A passkey as the second factor (after the password, or in a step-up).
  passkeyVerify: {
    code_invalid: () =>
      'This passkey was not accepted. Try again with a passkey saved for this account, or choose another method. After 5 failed attempts you will have to start again.',
  },
  // Creating a passkey: the options are single use and live 5 minutes.
  passkeyRegister: {
    invalid_credentials: () => 'Your current password is not correct. No passkey was added.',
    validation_failed: (e) => e.detail || 'The passkey could not be registered. Please try again.',
    challenge_expired: () => 'Setting up the passkey took too long, or was already tried. Please try again.',
  },
  passkeyRename: {
    validation_failed: (e) => (e.detail ? `Please check the name: ${e.detail}` : 'Please choose a name of 1 to 64 characters.'),
    conflict: () => 'Only passkeys can be renamed.',
  },
  // The admin console: every route needs the admin role (checked on the current user record,
  // not only the token), a fresh verification, and a subject other than the admin.
  console: {
    forbidden: () =>
      'You are not allowed to do this. The console is for administrators only, and an administrator cannot act on their own user ID.',
    not_found: () => 'We could not find this user ID, or what you acted on has changed. Reload and try again.',
    conflict: (e) => e.detail || 'This cannot be done now because something changed. Reload and try again.',
    validation_failed: (e) => (e.detail ? `Please check what you entered: ${e.detail}` : 'Please check what you entered.'),
    step_up_cancelled: () => 'Nothing was shown or changed: the console needs a fresh verification, and it was cancelled.',
  },
  consoleApprove: {
    forbidden: () =>
      'You cannot approve this request: you filed it, or it is about you. A different administrator must approve it.',
    not_found: () => 'This request no longer exists: it was approved by someone else, or it has expired.',
    conflict: (e) => e.detail || 'This request was already approved or has expired.',
    step_up_cancelled: () => 'Nothing was approved: the verification was cancelled.',
  },
};

/** A sentence for any error thrown by the API module (or any other error). */
export function messageFor(error, context) {
  const special = context && IN_CONTEXT[context] && error && IN_CONTEXT[context][error.code];
  const build = special || (error && MESSAGES[error.code]);
  if (build) return build(error);
  if (error && error.status >= 500) return MESSAGES.service_unavailable(error);
  return 'Something went wrong. Please try again.';
}

/** Field problems a problem+json body may list (RFC 9457 extensions), as short lines. */
export function fieldProblems(error) {
  const list = (error && (error.errors || error.invalidParams)) || [];
  return list
    .map((p) => {
      const field = p.name || p.field || p.pointer || '';
      const reason = p.reason || p.detail || p.message || '';
      return field ? `${field}: ${reason}` : reason;
    })
    .filter(Boolean);
}

const EVENT_LABELS = {
  sign_in_succeeded: 'Signed in',
  sign_in_failed: 'Failed sign-in attempt',
  sign_in_aborted: 'Sign-in not completed: no session was opened',
  lock_started: 'User ID locked after failed attempts',
  code_sent: 'One-time code sent',
  factor_added: 'Sign-in method added',
  factor_removed: 'Sign-in method removed',
  passkey_counter_regression: 'A passkey was refused: it may have been copied',
  device_trusted: 'Device trusted',
  device_removed: 'Trusted device removed',
  password_changed: 'Password changed',
  password_reset: 'Password reset by email link',
  recovery_code_used: 'Recovery code used',
  recovery_codes_issued: 'New recovery codes made (the earlier ones no longer work)',
  phone_changed: 'Phone number changed',
  new_device: 'Sign-in from a new kind of device',
  invitation_accepted: 'Invitation accepted',
  user_invited: 'Invited',
  account_deactivated: 'User ID deactivated',
  mfa_reset_requested: 'Reset of two-step verification requested',
  mfa_reset_approved: 'Two-step verification reset by support',
  mfa_reset_refused: 'Reset of two-step verification refused',
  admin_unlock: 'Unlocked by an administrator',
  admin_deactivate: 'Deactivated by an administrator',
  admin_reactivate: 'Reactivated by an administrator',
  admin_force_password_change: 'Password change required by an administrator',
  role_granted: 'Role granted',
  role_revoked: 'Role removed',
  admin_invitation_requested: 'Invitation as an administrator requested',
  admin_invitation_approved: 'Invitation as an administrator approved',
  admin_invitation_refused: 'Invitation as an administrator: approval refused',
  role_grant_requested: 'Administrator role requested',
  role_grant_approved: 'Administrator role approved',
  role_grant_refused: 'Administrator role: approval refused',
  role_revocation_requested: 'Removal of the administrator role requested',
  role_revocation_approved: 'Removal of the administrator role approved',
  role_revocation_refused: 'Removal of the administrator role: approval refused',
  admin_deactivation_requested: 'Deactivation of an administrator requested',
  admin_deactivation_approved: 'Deactivation of an administrator approved',
  admin_deactivation_refused: 'Deactivation of an administrator: approval refused',
};

/** What a two-admin request asks for, in words ("mfa_reset" → "Reset two-step verification"). */
export const REQUEST_KINDS = {
  mfa_reset: 'Reset two-step verification',
  admin_invitation: 'Invite as an administrator',
  role_grant: 'Grant the administrator role',
  role_revocation: 'Take away the administrator role',
  admin_deactivation: 'Deactivate an administrator',
};

const DELIVERY_PURPOSES = {
  sign_in: 'Sign-in code',
  step_up: 'Step-up code',
  enrol: 'Set-up code',
  invitation: 'Invitation',
  password_reset: 'Password reset link',
  alert_lock: 'Alert: user ID locked',
  alert_new_device: 'Alert: new trusted device',
  alert_factor_added: 'Alert: sign-in method added',
  alert_factor_removed: 'Alert: sign-in method removed',
  alert_phone_changed: 'Alert: phone number changed',
  alert_password_changed: 'Alert: password changed',
  alert_recovery_code_used: 'Alert: recovery code used',
  alert_deactivated: 'Alert: deactivated (not used)',
  alert_deactivated_by_admin: 'Alert: deactivated by an administrator',
  alert_second_factor_locked: 'Alert: second factor locked',
  alert_new_device_sign_in: 'Alert: sign-in from a new device',
  alert_passkey_counter_regression: 'Alert: a passkey may have been copied',
};

/** "sign_in" → "Sign-in code"; alerts ("alert_lock") → "Alert: lock". */
export function deliveryPurpose(purpose) {
  if (DELIVERY_PURPOSES[purpose]) return DELIVERY_PURPOSES[purpose];
  const text = String(purpose || '');
  if (text.startsWith('alert_')) return `Alert: ${text.slice(6).replace(/_/g, ' ')}`;
  return text.replace(/_/g, ' ') || '—';
}

/** A readable name for an audit event kind ("sign_in_failed" → "Failed sign-in attempt"). */
export function eventLabel(kind) {
  if (EVENT_LABELS[kind]) return EVENT_LABELS[kind];
  const words = String(kind || 'event').replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

const DETAIL_WORDS = { sms: 'text message', voice: 'voice call', totp: 'authenticator app', email: 'email', phone: 'phone', passkey: 'passkey', recovery: 'recovery code', enrol: 'set-up', trusted_device: 'trusted device' };

/** Makes an event's detail readable ("sms (enrol)" → "text message (set-up)"). */
export function eventDetail(detail) {
  return String(detail || '').replace(/[a-z_]+/g, (word) => DETAIL_WORDS[word] || word);
}
