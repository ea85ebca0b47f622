// The one fetch wrapper, and one small function per API route (same origin, relative URLs).
// Errors become ApiError with the problem+json `code`; a 401 on an authenticated call refreshes
// the tokens once (one refresh at a time: reusing a rotated refresh token would revoke the
// session) and retries; if that fails the session is over and `onSessionEnded` is called.

import * as session from './session.js';

export class ApiError extends Error {
  constructor({ status = 0, code = 'unknown', detail = '', title = '', retryAfter = null, body = null }) {
    super(title || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.retryAfter = retryAfter;
    this.errors = body && Array.isArray(body.errors) ? body.errors : null;
    this.invalidParams = body && Array.isArray(body['invalid-params']) ? body['invalid-params'] : null;
  }
}

/** Thrown (after the sign-in screen is shown) when the session cannot be refreshed. */
export class SessionEnded extends Error {
  constructor() {
    super('session ended');
    this.name = 'SessionEnded';
    this.code = 'unauthorized';
  }
}

let sessionEndedHandler = () => {};
export function onSessionEnded(handler) {
  sessionEndedHandler = handler;
}

function retryAfterOf(response) {
  const value = Number.parseInt(response.headers.get('retry-after') || '', 10);
  return Number.isFinite(value) ? value : null;
}

async function bodyOf(response) {
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  if (!type.includes('json')) return null;
  try {
    return await response.json();
  } catch {
    return null;
  }
}

function errorFrom(response, body) {
  const problem = body && typeof body === 'object' ? body : {};
  let code = typeof problem.code === 'string' ? problem.code : null;
  // API Gateway's JWT authorizer answers {"message":"Unauthorized"} without a code.
  if (!code) code = response.status === 401 ? 'unauthorized' : response.status >= 500 ? 'service_unavailable' : 'unknown';
  return new ApiError({
    status: response.status,
    code,
    detail: typeof problem.detail === 'string' ? problem.detail : '',
    title: typeof problem.title === 'string' ? problem.title : '',
    retryAfter: retryAfterOf(response),
    body: problem,
  });
}

async function send(method, path, { body, auth = false, headers = {} } = {}) {
  const init = { method, headers: { accept: 'application/json, application/problem+json', ...headers }, cache: 'no-store', credentials: 'same-origin' };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (auth) init.headers.authorization = `Bearer ${session.accessToken()}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError({ code: 'network' });
  }
  const data = await bodyOf(response);
  if (!response.ok) throw errorFrom(response, data);
  return { status: response.status, data, retryAfter: retryAfterOf(response) };
}

let refreshing = null;

/** Rotates the tokens once, however many calls found the access token expired at once. */
function refreshOnce() {
  if (!refreshing) {
    const token = session.refreshToken();
    refreshing = (async () => {
      try {
        if (!token) return false;
        const { data } = await send('POST', '/v1/tokens/refresh', { body: { refresh_token: token } });
        session.rotate(data);
        return true;
      } catch (err) {
        if (err.code === 'network' || err.code === 'service_unavailable') throw err;
        return false;
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

/** An authenticated call: refresh once on 401, then give up (back to sign-in). */
async function authed(method, path, { quiet = false, ...options } = {}) {
  const ended = () => {
    session.end();
    if (!quiet) sessionEndedHandler();
    return new SessionEnded();
  };
  if (!session.isSignedIn()) throw ended();
  const used = session.accessToken();
  try {
    return await send(method, path, { ...options, auth: true });
  } catch (err) {
    if (err.status !== 401 || err.code !== 'unauthorized') throw err;
    // Another call may have refreshed meanwhile: then just retry with the new token.
    const fresh = session.accessToken() !== used || (await refreshOnce());
    if (fresh) {
      try {
        return await send(method, path, { ...options, auth: true });
      } catch (again) {
        if (again.status !== 401 || again.code !== 'unauthorized') throw again;
      }
    }
    throw ended();
  }
}

const enc = encodeURIComponent;

// ---- Public routes ---------------------------------------------------------------------------

export async function signIn(userId, password, deviceToken) {
  const headers = deviceToken ? { 'x-device-token': deviceToken } : {};
  return (await send('POST', '/v1/sign-in', { body: { user_id: userId, password }, headers })).data;
}

export async function sendCode(challengeId, method, factorId) {
  const body = factorId ? { method, factor_id: factorId } : { method };
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/codes`, { body })).data;
}

export async function verify(challengeId, { method, code, factorId, trustDevice }) {
  const body = { method, code };
  if (factorId) body.factor_id = factorId;
  if (trustDevice) body.trust_device = true;
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/verify`, { body })).data;
}

export async function redeemRecoveryCode(challengeId, code, trustDevice) {
  const body = trustDevice ? { code, trust_device: true } : { code };
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/recovery-code`, { body })).data;
}

export async function enrolPhone(challengeId, phone, delivery) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/phone`, { body: { phone, delivery } })).data;
}

export async function enrolEmail(challengeId, email) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/email`, { body: { email } })).data;
}

export async function enrolTotp(challengeId) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/totp`, { body: {} })).data;
}

export async function verifyEnrolment(challengeId, factorId, code) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/${enc(factorId)}/verify`, { body: { code } })).data;
}

export async function enrolPasskey(challengeId, name) {
  const body = name ? { name } : {};
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/passkey`, { body })).data;
}

/** Finishes a passkey enrolment inside the sign-in: the RegistrationResponseJSON. */
export async function verifyEnrolmentPasskey(challengeId, factorId, credential) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/factors/${enc(factorId)}/verify`, { body: { credential } })).data;
}

/** Options for a passkey as the second factor of an mfa_required challenge. */
export async function passkeyOptions(challengeId) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/passkey/options`)).data;
}

export async function verifyPasskey(challengeId, credential, trustDevice) {
  const body = { method: 'passkey', credential };
  if (trustDevice) body.trust_device = true;
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/verify`, { body })).data;
}

/** Passwordless: options for any discoverable passkey of this site → {challenge_id, expires_in, options}. */
export async function passwordlessOptions() {
  return (await send('POST', '/v1/passkey/options')).data;
}

export async function passwordlessSignIn(challengeId, credential) {
  return (await send('POST', '/v1/passkey/sign-in', { body: { challenge_id: challengeId, credential } })).data;
}

export async function setRequiredPassword(challengeId, newPassword) {
  return (await send('POST', `/v1/sign-in/${enc(challengeId)}/password`, { body: { new_password: newPassword } })).data;
}

export async function forgotPassword(userId) {
  return (await send('POST', '/v1/password/forgot', { body: { user_id: userId } })).data;
}

export async function resetPassword(token, newPassword) {
  await send('POST', '/v1/password/reset', { body: { token, new_password: newPassword } });
}

export async function acceptInvitation(token, password) {
  await send('POST', `/v1/invitations/${enc(token)}/accept`, { body: { password } });
}

// ---- Signed-in routes ------------------------------------------------------------------------

/** Revokes the session on the server (refreshing first if needed); the caller forgets it. */
export async function signOut() {
  await authed('POST', '/v1/sign-out', { quiet: true });
}

export async function factors() {
  return (await authed('GET', '/v1/me/factors')).data.factors || [];
}

export async function addPhone(phone, delivery) {
  return (await authed('POST', '/v1/me/factors/phone', { body: { phone, delivery } })).data;
}

export async function addEmail(email) {
  return (await authed('POST', '/v1/me/factors/email', { body: { email } })).data;
}

export async function addTotp() {
  return (await authed('POST', '/v1/me/factors/totp', { body: {} })).data;
}

/** → {factor_id, status: "pending", options}; finished by activatePasskey. The current password
 * is asked again: a passkey signs in without one. */
export async function addPasskey(name, currentPassword) {
  const body = name ? { name, current_password: currentPassword } : { current_password: currentPassword };
  return (await authed('POST', '/v1/me/factors/passkey', { body })).data;
}

/** The RegistrationResponseJSON → the factor, with recovery_codes when a set was made. */
export async function activatePasskey(factorId, credential) {
  return (await authed('POST', `/v1/me/factors/${enc(factorId)}/verify`, { body: { credential } })).data;
}

export async function renameFactor(factorId, name) {
  return (await authed('PATCH', `/v1/me/factors/${enc(factorId)}`, { body: { name } })).data;
}

export async function activateFactor(factorId, code) {
  return (await authed('POST', `/v1/me/factors/${enc(factorId)}/verify`, { body: { code } })).data;
}

export async function removeFactor(factorId) {
  await authed('DELETE', `/v1/me/factors/${enc(factorId)}`);
}

export async function changePhone(factorId, phone) {
  return (await authed('PUT', `/v1/me/factors/${enc(factorId)}/phone`, { body: { phone } })).data;
}

export async function recoveryCodesRemaining() {
  return (await authed('GET', '/v1/me/recovery-codes')).data.remaining;
}

export async function regenerateRecoveryCodes() {
  return (await authed('POST', '/v1/me/recovery-codes', { body: {} })).data.recovery_codes;
}

export async function devices() {
  // This browser's device token, if it has one: the API marks that device `current`.
  const token = session.deviceToken(session.userId());
  const headers = token ? { 'x-device-token': token } : {};
  return (await authed('GET', '/v1/me/devices', { headers })).data.devices || [];
}

export async function removeDevice(deviceId) {
  await authed('DELETE', `/v1/me/devices/${enc(deviceId)}`);
}

export async function removeAllDevices() {
  return (await authed('DELETE', '/v1/me/devices')).data;
}

export async function events() {
  return (await authed('GET', '/v1/me/events')).data.events || [];
}

export async function changePassword(currentPassword, newPassword) {
  await authed('POST', '/v1/me/password', { body: { current_password: currentPassword, new_password: newPassword } });
}

export async function startStepUp(method, factorId) {
  const body = factorId ? { method, factor_id: factorId } : { method };
  return (await authed('POST', '/v1/me/step-up', { body })).data;
}

export async function resendStepUpCode(challengeId, method, factorId) {
  const body = factorId ? { method, factor_id: factorId } : { method };
  return (await authed('POST', `/v1/me/step-up/${enc(challengeId)}/codes`, { body })).data;
}

export async function verifyStepUp(challengeId, method, code, factorId) {
  const body = factorId ? { method, code, factor_id: factorId } : { method, code };
  return (await authed('POST', `/v1/me/step-up/${enc(challengeId)}/verify`, { body })).data;
}

export async function verifyStepUpPasskey(challengeId, credential) {
  return (await authed('POST', `/v1/me/step-up/${enc(challengeId)}/verify`, { body: { method: 'passkey', credential } })).data;
}

export async function stepUpWithRecoveryCode(challengeId, code) {
  return (await authed('POST', `/v1/me/step-up/${enc(challengeId)}/recovery-code`, { body: { code } })).data;
}

// ---- Admin console (every route: an admin with an elevated session, on someone else) -------
// The API decides; the console only shows what it answers. Actions answer 204 when done and
// 202 with {request_id, status: "pending_approval"} when a second admin must approve.

export async function adminSearch(query) {
  return (await authed('GET', `/v1/admin/users?query=${enc(query)}`)).data.users || [];
}

export async function adminUser(userId) {
  return (await authed('GET', `/v1/admin/users/${enc(userId)}`)).data;
}

export async function adminEvents(userId) {
  return (await authed('GET', `/v1/admin/users/${enc(userId)}/events`)).data.events || [];
}

export async function adminDeliveries(userId) {
  return (await authed('GET', `/v1/admin/users/${enc(userId)}/deliveries`)).data.deliveries || [];
}

/** {user_id, email, phone?, roles?} → {status: 201, data: {user_id, invitation}} or {status: 202, data: pending}. */
export async function adminInvite(invitation) {
  const { status, data } = await authed('POST', '/v1/admin/users', { body: invitation });
  return { status, data };
}

/** action: unlock | deactivate | reactivate | force-password-change → {status: 204} or {status: 202, data}. */
export async function adminAct(userId, action) {
  const { status, data } = await authed('POST', `/v1/admin/users/${enc(userId)}/${action}`);
  return { status, data };
}

/** {status: 204} when granted, {status: 202, data: pending} for the admin role. */
export async function adminGrantRole(userId, role, reason) {
  const body = reason ? { role, reason } : { role };
  const { status, data } = await authed('POST', `/v1/admin/users/${enc(userId)}/roles`, { body });
  return { status, data };
}

/** {status: 204} when removed, {status: 202, data: pending} when taking admin from an admin. */
export async function adminRevokeRole(userId, role) {
  const { status, data } = await authed('DELETE', `/v1/admin/users/${enc(userId)}/roles/${enc(role)}`);
  return { status, data };
}

export async function adminRequestMfaReset(userId, reason) {
  return (await authed('POST', '/v1/admin/mfa-resets', { body: { user_id: userId, reason } })).data;
}

export async function adminRequests(status = 'pending') {
  return (await authed('GET', `/v1/admin/requests?status=${enc(status)}`)).data.requests || [];
}

export async function adminApprove(requestId) {
  return (await authed('POST', `/v1/admin/requests/${enc(requestId)}/approve`)).data;
}
