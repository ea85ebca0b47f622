// Shared helpers of the browser tests: Chromium (Debian's, through playwright-core), users from
// the operator CLI, messages read back from the AWS emulator, RFC 6238 codes, QR decoding and
// screenshots, and passkeys on Chromium's virtual authenticator (CDP). Configuration comes from
// the environment that scripts/browser-test.sh exports:
// PORTCULLIS_API_URL, PORTCULLIS_ADMIN_BIN, AWS_ENDPOINT_URL and the stack's PORTCULLIS_* file
// (PORTCULLIS_EMULATOR says where sent messages are read back).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';
import jsQR from 'jsqr';
import { PNG } from 'pngjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');

function required(name) {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (run scripts/browser-test.sh)`);
  return value.replace(/\/+$/, '');
}

export const API = required('PORTCULLIS_API_URL');

/**
 * The same endpoint at `localhost` instead of an IP address: browsers refuse WebAuthn on
 * IP-address origins, and the local relying party is `localhost` (PORTCULLIS_PASSKEY_RP_ID) with
 * the origin `http://localhost:<port>` (PORTCULLIS_PASSKEY_ORIGINS). The passkey tests open the
 * client here; the others keep PORTCULLIS_API_URL (127.0.0.1), where the page says so.
 */
export const LOCALHOST = (() => {
  const url = new URL(API);
  url.hostname = 'localhost';
  return url.origin;
})();
export const EMULATOR = required('AWS_ENDPOINT_URL');
export const ADMIN_BIN = process.env.PORTCULLIS_ADMIN_BIN;
export const CHROMIUM = process.env.PORTCULLIS_CHROMIUM || '/usr/bin/chromium';
export const PASSWORD = 'a calm and perfectly long passphrase';

/** The SPEC §3 text for the sixth send request. */
export const SEND_LIMIT_TEXT =
  'We can no longer send a code: you have reached the maximum attempts for sending a code to one of your devices. Sign out, wait 30 minutes and sign in again.';

// ---- Users and phones ---------------------------------------------------------------------------

/** A user ID no other test (or earlier run) uses. */
export function uniqueUser(prefix) {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}@browser.example`;
}

/** Creates an active user with the operator CLI (password on stdin, never on the command line). */
export async function createUser(userId, password = PASSWORD, roles = []) {
  assert.ok(ADMIN_BIN, 'PORTCULLIS_ADMIN_BIN must be set');
  const args = ['create-user', '--user-id', userId, '--email', userId, '--password-stdin'];
  for (const role of roles) args.push('--role', role);
  const child = spawn(ADMIN_BIN, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  child.stdout.resume();
  child.stdin.end(`${password}\n`);
  const code = await new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  assert.equal(code, 0, `create-user failed: ${stderr}`);
  return userId;
}

let phoneCounter = 0;

/**
 * A valid +1 number (libphonenumber accepts 555-01xx in these area codes). Each test file uses
 * its own area code so files can run in parallel without reading each other's messages.
 */
export function freshPhone(areaCode) {
  phoneCounter += 1;
  const n = (process.pid + phoneCounter * 7) % 100;
  return `+1${areaCode}55501${String(n).padStart(2, '0')}`;
}

// ---- The emulator ---------------------------------------------------------------------------

/**
 * Which emulator the stack runs on, as provisioning wrote it to the env file
 * (PORTCULLIS_EMULATOR: localstack or moto; moto when unset). Sent messages are read back:
 * - moto: from /moto-api/data.json (all of moto's state, so it slows as the emulator fills);
 * - LocalStack: texts from /_aws/sns/sms-messages?phoneNumber=…, emails from /_aws/ses. Texts
 *   arrive a moment after Publish returns (a worker thread delivers them): waitFor polls.
 */
export const EMULATOR_KIND = process.env.PORTCULLIS_EMULATOR === 'localstack' ? 'localstack' : 'moto';

async function emulatorJson(pathAndQuery) {
  const response = await fetch(`${EMULATOR}${pathAndQuery}`);
  assert.equal(response.status, 200, `the emulator answers ${pathAndQuery}`);
  return response.json();
}

const emulatorState = () => emulatorJson('/moto-api/data.json');

export async function smsTo(phone) {
  if (EMULATOR_KIND === 'localstack') {
    const state = await emulatorJson(`/_aws/sns/sms-messages?phoneNumber=${encodeURIComponent(phone)}`);
    return ((state.sms_messages && state.sms_messages[phone]) || []).map((m) => m.Message);
  }
  const state = await emulatorState();
  return ((state.sns && state.sns.SMS) || []).filter((m) => m.phone_number === phone).map((m) => m.message);
}

/** The texts sent to `phone` with the provider's message id: [{ text, messageId }]. */
export async function smsRecordsTo(phone) {
  if (EMULATOR_KIND === 'localstack') {
    const state = await emulatorJson(`/_aws/sns/sms-messages?phoneNumber=${encodeURIComponent(phone)}`);
    return ((state.sms_messages && state.sms_messages[phone]) || []).map((m) => ({ text: m.Message, messageId: m.MessageId || null }));
  }
  const state = await emulatorState();
  return ((state.sns && state.sns.SMS) || []).filter((m) => m.phone_number === phone)
    .map((m) => ({ text: m.message, messageId: m.message_id || null }));
}

const asText = (value) => (typeof value === 'string' ? value : JSON.stringify(value ?? ''));

export async function emailsTo(address) {
  if (EMULATOR_KIND === 'localstack') {
    const state = await emulatorJson('/_aws/ses');
    return (state.messages || [])
      .filter((m) => ['ToAddresses', 'CcAddresses', 'BccAddresses']
        .some((field) => ((m.Destination && m.Destination[field]) || []).includes(address)))
      .map((m) => ({ subject: asText(m.Subject), body: asText(m.Body && m.Body.text_part) }));
  }
  const state = await emulatorState();
  return ((state.ses && state.ses.Message) || [])
    .filter((m) => JSON.stringify(m.destinations || '').includes(address))
    .map((m) => ({ subject: String(m.subject ?? ''), body: typeof m.body === 'string' ? m.body : JSON.stringify(m.body) }));
}

export function sixDigits(text) {
  const match = /(?<!\d)\d{6}(?!\d)/.exec(text);
  assert.ok(match, `a 6-digit code in: ${text}`);
  return match[0];
}

/**
 * Reads until there are at least `count` messages or ~20 s have passed (at least one read):
 * alerts, reset links and invitations leave through the outbox, a second or two later.
 * One read of the emulator's data.json is slow (it dumps every object moto ever made, so it
 * grows with the DynamoDB traffic of the whole test run): read as little as possible.
 */
export async function waitFor(read, count, what, { within = 20_000 } = {}) {
  const deadline = Date.now() + within;
  for (;;) {
    const all = await read();
    if (all.length >= count) return all;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what} (${all.length} of ${count})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// SMS to each phone already used by this process. The API publishes a code before it answers,
// so once the page has moved on, the newest SMS to the phone is the one just sent, and no read
// "before" is needed even when an earlier run used the same number.
const smsUsed = new Map();

/** The code of the newest SMS to `phone`, which must be newer than the last one used here. */
export async function nextSmsCode(phone) {
  const all = await waitFor(() => smsTo(phone), (smsUsed.get(phone) || 0) + 1, `an SMS to ${phone}`);
  smsUsed.set(phone, all.length);
  return sixDigits(all[all.length - 1]);
}

/** Runs `action` (which must wait until the page shows that the code was sent), then reads the code. */
export async function smsCodeAfter(phone, action) {
  await action();
  return nextSmsCode(phone);
}

// ---- TOTP (RFC 6238) and the QR code ------------------------------------------------------

export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/[=\s]/g, '').toUpperCase()) {
    const index = alphabet.indexOf(c);
    assert.ok(index >= 0, `base32 character ${c}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 with HMAC-SHA-1, 6 digits, 30-second steps. */
export function totp(secret, unixSeconds = Date.now() / 1000, { digits = 6, period = 30, algorithm = 'sha1' } = {}) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(unixSeconds / period)));
  const digest = createHmac(algorithm, secret).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const binary = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}

// The last time step each secret's code was used for (the API never accepts a code twice).
const lastStep = new Map();

/**
 * A code the API has not seen yet for this secret: the current step's, or the next one's (the
 * API allows one step of drift), waiting for time to pass only if both were used.
 */
export async function freshTotp(secret) {
  const key = secret.toString('hex');
  const used = lastStep.has(key) ? lastStep.get(key) : -1;
  let now = Math.floor(Date.now() / 1000 / 30);
  while (used + 1 > now + 1) {
    await new Promise((r) => setTimeout(r, 500));
    now = Math.floor(Date.now() / 1000 / 30);
  }
  const step = Math.max(now, used + 1);
  lastStep.set(key, step);
  return totp(secret, step * 30);
}

/** Decodes the QR code in a PNG (a screenshot of the <img>) to its text. */
export function decodeQr(pngBuffer) {
  const png = PNG.sync.read(pngBuffer);
  const result = jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height);
  if (!result) {
    const dir = path.join(REPO_ROOT, '.local', 'browser-screens');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `undecodable-qr-${Date.now()}.png`), pngBuffer);
  }
  assert.ok(result, 'a QR code in the image');
  return result.data;
}

/** The TOTP parameters of an otpauth:// URI, checked against what the tests implement. */
export function parseOtpauth(uri) {
  const url = new URL(uri);
  assert.equal(url.protocol, 'otpauth:');
  assert.equal(url.host, 'totp');
  const p = url.searchParams;
  const params = {
    label: decodeURIComponent(url.pathname.replace(/^\//, '')),
    secret: p.get('secret'),
    issuer: p.get('issuer'),
    algorithm: (p.get('algorithm') || 'SHA1').toUpperCase(),
    digits: Number(p.get('digits') || 6),
    period: Number(p.get('period') || 30),
  };
  assert.ok(params.secret, 'the URI has a secret');
  assert.equal(params.algorithm, 'SHA1');
  assert.equal(params.digits, 6);
  assert.equal(params.period, 30);
  return params;
}

// ---- The browser --------------------------------------------------------------------------

const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/**
 * Runs `body(page)` in a fresh Chromium profile. Fails on any CSP violation, page error or
 * console error (except the browser's own note about an API answer with a 4xx status, which
 * the tests cause on purpose).
 */
/**
 * Starts Chromium with a fresh profile. A start that dies at once (seen once in CI: the browser
 * process exited during launch, before any page) is retried, up to 3 starts; a failure after the
 * browser is up is never retried, so no test failure is hidden.
 */
async function launch(userAgent) {
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-chromium-'));
    try {
      const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
        viewport: { width: 1024, height: 800 },
        // Two device pixels per CSS pixel: the QR code's <img> (196 CSS px for a 392 px PNG) is
        // then captured at its own resolution, 8 pixels a module, whatever its sub-pixel position.
        deviceScaleFactor: 2,
        locale: 'en-US',
        timezoneId: 'UTC',
        ...(userAgent ? { userAgent } : {}),
      });
      return { context, userDataDir };
    } catch (error) {
      lastError = error;
      fs.rmSync(userDataDir, { recursive: true, force: true });
      console.error(`chromium did not start (attempt ${attempt} of 3): ${String(error.message).split('\n')[0]}`);
    }
  }
  throw lastError;
}

export async function withPage(body, { userAgent } = {}) {
  const { context, userDataDir } = await launch(userAgent);
  const problems = [];
  try {
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
      });
    });
    const page = context.pages()[0] || (await context.newPage());
    // Generous: while another test reads the emulator's data.json, the emulator answers nothing.
    page.setDefaultTimeout(60_000);
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const url = message.location().url || '';
      const expectedApiStatus = /Failed to load resource: the server responded with a status of 4\d\d/.test(message.text())
        && new URL(url, API).pathname.startsWith('/v1/');
      if (!expectedApiStatus) problems.push(`console error: ${message.text()} (${url})`);
    });
    await body(page, context);
    assert.deepEqual(problems, [], 'no CSP violation, page error or console error');
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

/** Screenshots go to docs/screenshots with PORTCULLIS_SCREENSHOTS=1, else .local/browser-screens. */
export async function screenshot(page, name) {
  const dir = process.env.PORTCULLIS_SCREENSHOTS === '1'
    ? path.join(REPO_ROOT, 'docs', 'screenshots')
    : path.join(REPO_ROOT, '.local', 'browser-screens');
  fs.mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true, animations: 'disabled', caret: 'hide', scale: 'css' });
}

// ---- Steps of the client, as a person does them ------------------------------------------

export const heading = (page, name) => page.getByRole('heading', { level: 1, name });

export async function open(page, pathAndQuery = '/', { origin = API } = {}) {
  await page.goto(`${origin}${pathAndQuery}`);
}

/** Opens the client at localhost (passkeys work there, not on 127.0.0.1). */
export async function openAtLocalhost(page, pathAndQuery = '/') {
  await open(page, pathAndQuery, { origin: LOCALHOST });
}

// ---- Passkeys: Chromium's virtual authenticator ---------------------------------------------

/**
 * Adds a virtual authenticator to the page's browser tab (CDP WebAuthn domain): a platform
 * authenticator (internal transport, CTAP2) with discoverable credentials and user verification
 * that always succeeds, and automatic user presence, so every WebAuthn request is answered at
 * once as if the person touched the sensor. It stays across navigations of the tab.
 *
 * Automatic presence also answers the sign-in page's autofill request (conditional mediation)
 * as soon as it starts, which signs in at once when the authenticator holds a passkey for the
 * site: `present(false)` before the sign-in page appears keeps that request waiting (it stays
 * waiting after `present(true)`, which only concerns later requests), `present(true)` before a
 * button press. `verified(false)` makes the next request fail as a cancelled one
 * (NotAllowedError), because user verification is required.
 */
export async function addVirtualAuthenticator(page, options = {}) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
      ...options,
    },
  });
  return {
    cdp,
    authenticatorId,
    /** The credentials it holds (CDP Credential objects: credentialId, rpId, userHandle, …). */
    credentials: async () => (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials,
    present: (enabled) => cdp.send('WebAuthn.setAutomaticPresenceSimulation', { authenticatorId, enabled }),
    verified: (isUserVerified) => cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified }),
    /** Puts a credential (as credentials() returned it, private key included) on this authenticator. */
    addCredential: (credential) => cdp.send('WebAuthn.addCredential', { authenticatorId, credential }),
    /** Takes the authenticator away, with its credentials (another device is another authenticator). */
    remove: () => cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId }),
  };
}

/** Records the API calls the page makes, as "METHOD /path" with the answer's status. */
export function recordApiCalls(page) {
  const calls = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/v1/')) calls.push({ call: `${response.request().method()} ${url.pathname}`, status: response.status() });
  });
  return calls;
}

/** In the enrolment of the first sign-in: "Add a passkey" → recovery codes (returned). */
export async function enrolPasskeyAtFirstSignIn(page, { shots = false } = {}) {
  await heading(page, 'Set up two-step verification').waitFor();
  if (shots) await screenshot(page, 'enrolment-passkey');
  await page.getByRole('button', { name: 'Add a passkey' }).click();
  await heading(page, 'Save your recovery codes').waitFor();
  return (await page.locator('ol.codes li').allTextContents()).map((c) => c.trim());
}

export async function signIn(page, userId, password = PASSWORD) {
  await heading(page, 'Sign in').waitFor();
  await page.getByLabel('User ID').fill(userId);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/v1/sign-in'),
    page.getByRole('button', { name: 'Sign in', exact: true }).click(),
  ]);
}

export async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await heading(page, 'Sign in').waitFor();
  await page.getByText('You have signed out.').waitFor();
}

/** Enrols `phone` for text messages inside the first sign-in, reading the code from the emulator. */
export async function enrolPhoneAtFirstSignIn(page, phone, { shots = false } = {}) {
  await heading(page, 'Set up two-step verification').waitFor();
  if (shots) await screenshot(page, 'enrolment');
  await page.getByLabel('Mobile number').fill(phone);
  await page.getByLabel('Text message (SMS)').check();
  const code = await smsCodeAfter(phone, async () => {
    await page.getByRole('button', { name: 'Send me a code' }).click();
    await heading(page, 'Confirm your phone').waitFor();
  });
  await page.getByLabel('6-digit code').fill(code);
  await page.getByRole('button', { name: 'Confirm and sign in' }).click();
  await heading(page, 'Security').waitFor();
}

/** On the authenticator set-up screen: scans the QR code, checks the key, enters the first code. */
export async function scanQrAndVerify(page, { shots = false } = {}) {
  await heading(page, 'Set up your authenticator app').waitFor();
  const qr = page.getByRole('img', { name: /QR code/ });
  await qr.waitFor();
  await page.waitForFunction(() => {
    const img = document.querySelector('img.qr');
    return img && img.complete && img.naturalWidth > 0;
  });
  if (shots) await screenshot(page, 'totp-enrolment');
  const uri = decodeQr(await qr.screenshot({ scale: 'device' }));
  const params = parseOtpauth(uri);
  const shown = (await page.locator('.secret').textContent()).replace(/\s/g, '');
  assert.equal(shown, params.secret, 'the key for manual entry is the one in the QR code');
  const secret = base32Decode(params.secret);
  const enrolledAt = Date.now() / 1000;
  await page.getByLabel('6-digit code').fill(await freshTotp(secret));
  await page.getByRole('button', { name: 'Verify and turn on' }).click();
  await heading(page, 'Save your recovery codes').waitFor();
  const codes = (await page.locator('ol.codes li').allTextContents()).map((c) => c.trim());
  return { secret, codes, uri, params, enrolledAt };
}

/** Enrols an authenticator app inside the first sign-in by scanning the QR code on the page. */
export async function enrolAuthenticatorAtFirstSignIn(page, options = {}) {
  await heading(page, 'Set up two-step verification').waitFor();
  await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
  return scanQrAndVerify(page, options);
}

/** Signs in with a code from the authenticator app (the user has no phone), optionally trusting the device. */
export async function signInWithTotp(page, userId, secret, { trust = false } = {}) {
  await signIn(page, userId);
  await heading(page, 'Enter the code from your authenticator app').waitFor();
  await page.getByLabel('6-digit code').fill(await freshTotp(secret));
  if (trust) await page.getByLabel('Trust this device for 180 days').check();
  await page.getByRole('button', { name: 'Continue' }).click();
  await heading(page, 'Security').waitFor();
}

/** Leaves the recovery-codes screen the way a person does: confirm saving, then continue. */
export async function confirmSavedCodes(page) {
  const done = page.getByRole('button', { name: 'Continue' });
  assert.equal(await done.isDisabled(), true, 'Continue waits for "I have saved them"');
  await page.getByLabel('I have saved my recovery codes').check();
  await done.click();
  await heading(page, 'Security').waitFor();
}

/**
 * A user's first sign-in on a fresh page: the sign-in page, the password, an authenticator app
 * set up from the QR code (`options` as for enrolAuthenticatorAtFirstSignIn), and the recovery
 * codes confirmed. Returns what the enrolment returned (secret, codes, …).
 */
export async function firstSignInWithAuthenticator(page, userId, options = {}) {
  await open(page);
  await signIn(page, userId);
  const enrolled = await enrolAuthenticatorAtFirstSignIn(page, options);
  await confirmSavedCodes(page);
  return enrolled;
}

/** On a page that asks for a new password twice: `password`, its confirmation (by default the same), then `button`. */
export async function submitNewPassword(page, button, password, confirmation = password) {
  await page.getByLabel('New password', { exact: true }).fill(password);
  await page.getByLabel('Confirm new password').fill(confirmation);
  await page.getByRole('button', { name: button }).click();
}
