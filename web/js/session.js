// Session state. The access and refresh tokens live only in this module's variables: never in
// storage, never in a cookie, so a reload (or closing the tab) means signing in again.
// The trusted-device token is the one thing kept across visits (see docs/web-client.md).

let current = null; // { userId, access, refresh }

/** `userId` null: a passwordless (passkey) sign-in, where the token's `sub` says who it is. */
export function start(userId, tokens) {
  current = { userId, access: tokens.access_token, refresh: tokens.refresh_token };
  if (!userId) {
    const sub = claims().sub;
    current.userId = typeof sub === 'string' ? sub : '';
  }
}

export function isSignedIn() {
  return current !== null;
}

export function userId() {
  return current ? current.userId : null;
}

export function accessToken() {
  return current ? current.access : null;
}

export function refreshToken() {
  return current ? current.refresh : null;
}

/** After a refresh: both tokens rotate. */
export function rotate(tokens) {
  if (!current) return;
  current.access = tokens.access_token;
  current.refresh = tokens.refresh_token;
}

/** After a step-up: an elevated access token; the refresh token is unchanged. */
export function elevate(accessTokenValue) {
  if (current) current.access = accessTokenValue;
}

export function end() {
  current = null;
}

/**
 * The access token's claims (its payload, base64url JSON), decoded without checking the
 * signature: only to decide what to show (the console for an admin). The API checks the token
 * and the role on every call; nothing here grants anything.
 */
export function claims() {
  const token = accessToken();
  const part = token ? token.split('.')[1] : null;
  if (!part) return {};
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const payload = JSON.parse(new TextDecoder().decode(bytes));
    return payload && typeof payload === 'object' ? payload : {};
  } catch {
    return {};
  }
}

/** Whether the access token carries `role` (for display only: see claims()). */
export function hasRole(role) {
  const roles = claims().roles;
  return Array.isArray(roles) && roles.includes(role);
}

/** The signed-in user's ID as the API stores it (the token's `sub`). */
export function subject() {
  const sub = claims().sub;
  return typeof sub === 'string' ? sub : normaliseUserId(userId());
}

// ---- Trusted-device token -------------------------------------------------------------------
// localStorage, one entry per user ID (normalised as the API does: trimmed, NFKC, lower-case),
// so two people who share a browser profile do not present each other's token. Removed when
// the API no longer accepts it, when the user removes the device, or on a password change.

const PREFIX = 'portcullis.trusted-device.';

export function normaliseUserId(raw) {
  return String(raw || '').trim().normalize('NFKC').toLowerCase();
}

function key(user) {
  return PREFIX + normaliseUserId(user);
}

function readEntry(user) {
  try {
    const raw = window.localStorage.getItem(key(user));
    const entry = raw ? JSON.parse(raw) : null;
    return entry && typeof entry.token === 'string' ? entry : null;
  } catch {
    return null; // storage disabled or corrupt: behave as an untrusted device
  }
}

function writeEntry(user, entry) {
  try {
    window.localStorage.setItem(key(user), JSON.stringify(entry));
  } catch {
    // storage disabled (private mode, policy): the device simply stays untrusted
  }
}

export function deviceToken(user) {
  const entry = readEntry(user);
  return entry ? entry.token : null;
}

export function saveDeviceToken(user, token) {
  writeEntry(user, { token, savedAt: Date.now() });
}

export function forgetDevice(user) {
  try {
    window.localStorage.removeItem(key(user));
  } catch {
    // nothing stored
  }
}
