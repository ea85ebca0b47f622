// Passkeys (WebAuthn) in the browser: whether this page can use them, and the two browser calls
// (create a credential, get an assertion) between the API's JSON options and its JSON answers.
// The API speaks the WebAuthn Level 3 JSON forms (base64url without padding); browsers that have
// PublicKeyCredential.parse…FromJSON() and credential.toJSON() are used as they are, others get
// the small conversion below. Failures become errors with a `code` that messages.js words: the
// browser's own exception text is never shown.

/** An error of the browser's passkey call, with a code from messages.js. */
export class PasskeyError extends Error {
  constructor(code) {
    super(code);
    this.name = 'PasskeyError';
    this.code = code;
  }
}

/** Whether the page's host is an IP address (WebAuthn refuses those origins). */
export function onIpAddress() {
  const host = window.location.hostname;
  return /^[\d.]+$/.test(host) || host.includes(':') || host.startsWith('[');
}

/**
 * Whether passkeys can work on this page: 'ok'; 'ip' when it was opened at an IP address (the
 * relying party is a domain name, localhost when run locally); 'unsupported' when the browser
 * has no WebAuthn (or the page is not a secure context).
 */
export function availability() {
  if (onIpAddress()) return 'ip';
  if (!window.isSecureContext || typeof window.PublicKeyCredential !== 'function' || !navigator.credentials) {
    return 'unsupported';
  }
  return 'ok';
}

/** The address this page works with passkeys at: the same page on localhost. */
export function localhostAddress() {
  const { protocol, port } = window.location;
  return `${protocol}//localhost${port ? `:${port}` : ''}/`;
}

/** Whether the browser can offer passkeys in the user-ID field's autofill. */
export async function autofillAvailable() {
  if (availability() !== 'ok') return false;
  const check = window.PublicKeyCredential.isConditionalMediationAvailable;
  if (typeof check !== 'function') return false;
  try {
    return Boolean(await check.call(window.PublicKeyCredential));
  } catch {
    return false;
  }
}

// ---- base64url, for browsers without the JSON helpers -------------------------------------------

function fromBase64url(text) {
  const base64 = String(text).replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64.padEnd(Math.ceil(base64.length / 4) * 4, '=');
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toBase64url(buffer) {
  if (!buffer) return undefined;
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A copy without null members (WebIDL would read a null string as "null"). */
function withoutNulls(value) {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null).map(([k, v]) => [k, withoutNulls(v)]));
  }
  return value;
}

/** The API's options: the JSON dictionary itself (or wrapped as {publicKey}). */
function optionsJson(options) {
  const json = options && options.publicKey && !options.challenge ? options.publicKey : options;
  if (!json || typeof json.challenge !== 'string') throw new PasskeyError('passkey_failed');
  return withoutNulls(json);
}

const withIds = (list) => (Array.isArray(list) ? list.map((c) => ({ ...c, id: fromBase64url(c.id) })) : list);

function creationOptions(options) {
  const json = optionsJson(options);
  if (typeof window.PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
    return window.PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

function requestOptions(options) {
  const json = optionsJson(options);
  if (typeof window.PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
    return window.PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return { ...json, challenge: fromBase64url(json.challenge), allowCredentials: withIds(json.allowCredentials) };
}

/** RegistrationResponseJSON / AuthenticationResponseJSON of a credential. */
function credentialJson(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toBase64url(r.attestationObject);
    response.transports = typeof r.getTransports === 'function' ? r.getTransports() : [];
    if (typeof r.getAuthenticatorData === 'function') response.authenticatorData = toBase64url(r.getAuthenticatorData());
    if (typeof r.getPublicKeyAlgorithm === 'function') response.publicKeyAlgorithm = r.getPublicKeyAlgorithm();
    if (typeof r.getPublicKey === 'function') {
      const key = r.getPublicKey();
      if (key) response.publicKey = toBase64url(key);
    }
  } else {
    response.authenticatorData = toBase64url(r.authenticatorData);
    response.signature = toBase64url(r.signature);
    if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: typeof credential.getClientExtensionResults === 'function' ? credential.getClientExtensionResults() : {},
    response,
  };
}

/** The browser's exception, as one of our codes (its message is never shown). */
function codeOf(error, creating) {
  switch (error && error.name) {
    case 'NotAllowedError': return 'passkey_cancelled'; // cancelled, timed out, or no passkey chosen
    case 'AbortError': return 'passkey_aborted';
    case 'InvalidStateError': return creating ? 'passkey_exists' : 'passkey_failed';
    case 'SecurityError': return 'passkey_wrong_address';
    case 'NotSupportedError': return 'passkey_unsupported';
    default: return 'passkey_failed';
  }
}

function checkAvailable() {
  const state = availability();
  if (state === 'ip') throw new PasskeyError('passkey_wrong_address');
  if (state !== 'ok') throw new PasskeyError('passkey_unsupported');
}

/** navigator.credentials.create() with the API's registration options → RegistrationResponseJSON. */
export async function createPasskey(options) {
  checkAvailable();
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  } catch (error) {
    if (error instanceof PasskeyError) throw error;
    throw new PasskeyError(codeOf(error, true));
  }
  if (!credential) throw new PasskeyError('passkey_cancelled');
  return credentialJson(credential);
}

/**
 * navigator.credentials.get() with the API's request options → AuthenticationResponseJSON.
 * `conditional`: the autofill request of the user-ID field; `signal` aborts it.
 */
export async function getPasskey(options, { conditional = false, signal } = {}) {
  checkAvailable();
  const request = { publicKey: requestOptions(options) };
  if (conditional) request.mediation = 'conditional';
  if (signal) request.signal = signal;
  let credential;
  try {
    credential = await navigator.credentials.get(request);
  } catch (error) {
    if (error instanceof PasskeyError) throw error;
    throw new PasskeyError(signal && signal.aborted ? 'passkey_aborted' : codeOf(error, false));
  }
  if (!credential) throw new PasskeyError('passkey_cancelled');
  return credentialJson(credential);
}
