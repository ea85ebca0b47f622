// Passkeys, on Chromium's virtual authenticator (CDP WebAuthn): registered in the first sign-in's
// enrolment (recovery codes shown), signing in without a password (the button, and the user-ID
// field's autofill), as the second factor after the password (also under "Try another method"),
// a cancelled prompt, step-up with a passkey, rename and remove in Security, the client's own
// base64url conversion for browsers without the WebAuthn JSON helpers, and the hint on an
// IP-address origin. The client is opened at localhost (LOCALHOST): browsers refuse WebAuthn on
// 127.0.0.1, and the local relying party is localhost with the origin http://localhost:<port>.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  API, LOCALHOST, createUser, uniqueUser, withPage, open, openAtLocalhost, signIn, signOut, heading, screenshot,
  addVirtualAuthenticator, recordApiCalls, enrolPasskeyAtFirstSignIn, confirmSavedCodes, PASSWORD,
} from '../lib/harness.js';

/**
 * The stack's relying party must be localhost, with http://localhost:<port> among its origins
 * (scripts/local.sh and scripts/test.sh set PORTCULLIS_PASSKEY_RP_ID and _ORIGINS for the
 * endpoint; the env file keeps the template's production defaults, so its values say nothing).
 */
async function checkRelyingParty() {
  const response = await fetch(`${API}/v1/passkey/options`, { method: 'POST' });
  assert.equal(response.status, 200, 'POST /v1/passkey/options');
  const { options } = await response.json();
  assert.equal(options.rpId, 'localhost', `the endpoint's PORTCULLIS_PASSKEY_RP_ID must be localhost, and its origins include ${LOCALHOST}`);
}

const userIdOf = (user) => user.trim().normalize('NFKC').toLowerCase();
const CANCELLED = 'The passkey was not used: the request was cancelled or timed out.';

/** No browser exception text reached the page. */
async function noRawErrors(page) {
  const text = await page.locator('main').innerText();
  assert.doesNotMatch(text, /NotAllowedError|InvalidStateError|SecurityError|timed out or was not allowed|w3\.org/);
}

/** Signs out with the authenticator's presence off, so the sign-in page's autofill waits. */
async function signOutQuietly(page, authenticator) {
  await authenticator.present(false);
  await signOut(page);
}

/** A user whose first sign-in registered a passkey (recovery codes confirmed): on Security. */
async function userWithPasskey(page, authenticator, prefix, { shots = false } = {}) {
  const user = await createUser(uniqueUser(prefix));
  await openAtLocalhost(page);
  await signIn(page, user);
  const codes = await enrolPasskeyAtFirstSignIn(page, { shots });
  assert.equal(codes.length, 10, 'ten recovery codes');
  await confirmSavedCodes(page);
  const credentials = await authenticator.credentials();
  assert.equal(credentials.length, 1, 'one passkey on the authenticator');
  return { user, codes, credential: credentials[0] };
}

test('a first sign-in registers a passkey and shows recovery codes; it then signs in without a password, by button and by autofill', { timeout: 300_000 }, async () => {
  await checkRelyingParty();
  await withPage(async (page) => {
    // A synced passkey (backup eligible and backed up), as a phone or password manager makes.
    const authenticator = await addVirtualAuthenticator(page, { defaultBackupEligibility: true, defaultBackupState: true });
    const calls = recordApiCalls(page);
    await openAtLocalhost(page);
    await heading(page, 'Sign in').waitFor();
    assert.equal(await page.getByLabel('User ID').getAttribute('autocomplete'), 'username webauthn');
    await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
    await screenshot(page, 'sign-in-passkey');

    const { user, credential } = await userWithPasskey(page, authenticator, 'passkey-first', { shots: true });
    assert.equal(credential.rpId, 'localhost');
    assert.equal(credential.isResidentCredential, true, 'a discoverable credential');
    const handle = Buffer.from(credential.userHandle, 'base64').toString('latin1');
    assert.equal(handle.includes(userIdOf(user)), false, 'the user handle carries no user ID');

    // Listed in Security: its name, when it was added, never used yet, and synced.
    const item = page.locator('li.item', { has: page.locator('strong', { hasText: /^Passkey$/ }) });
    await item.waitFor();
    await item.getByText('Synced').waitFor();
    await item.getByText(/^Added .* · not used yet$/).waitFor();

    // The button: no user ID, no password, no code.
    await signOutQuietly(page, authenticator);
    await authenticator.present(true);
    const before = calls.length;
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await heading(page, 'Security').waitFor();
    await page.getByText(`Signed in as ${userIdOf(user)}`).waitFor();
    const made = calls.slice(before).map((c) => c.call);
    assert.ok(made.includes('POST /v1/passkey/options'), made.join(', '));
    assert.ok(made.includes('POST /v1/passkey/sign-in'), made.join(', '));
    assert.equal(made.includes('POST /v1/sign-in'), false, 'no password sent');
    await item.getByText(/ · last used /).waitFor();

    // The autofill: the sign-in page asks for a passkey at once (conditional mediation), and
    // the authenticator answers it (automatic presence) as a person would by picking it.
    const signedInAgain = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/passkey/sign-in' && r.status() === 200);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await signedInAgain;
    await heading(page, 'Security').waitFor();
    await page.getByText(`Signed in as ${userIdOf(user)}`).waitFor();
    await noRawErrors(page);
  });
});

test('a password, then a passkey as the second factor; "Try another method" offers it too; a cancelled prompt is explained', { timeout: 300_000 }, async () => {
  await withPage(async (page) => {
    const authenticator = await addVirtualAuthenticator(page);
    const { user } = await userWithPasskey(page, authenticator, 'passkey-second');
    await signOutQuietly(page, authenticator);

    await signIn(page, user);
    await heading(page, 'Use your passkey').waitFor();
    await screenshot(page, 'passkey-second-factor');

    // Cancelled (the browser's NotAllowedError): our words, never the browser's.
    await authenticator.present(true);
    await authenticator.verified(false);
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await page.getByRole('alert').filter({ hasText: CANCELLED }).waitFor();
    await noRawErrors(page);
    await screenshot(page, 'passkey-cancelled');
    await authenticator.verified(true);

    // "Try another method" lists the passkey beside the recovery codes.
    await page.getByRole('button', { name: 'Try another method' }).click();
    await heading(page, "Confirm it's you").waitFor();
    await page.getByRole('button', { name: 'Use a recovery code' }).waitFor();
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await heading(page, 'Use your passkey').waitFor();
    await page.getByRole('button', { name: 'Use a passkey' }).focus(); // with the keyboard
    await page.keyboard.press('Enter');
    await heading(page, 'Security').waitFor();
    await page.getByText(`Signed in as ${user}`).waitFor();
    await page.locator('li.item strong', { hasText: /^Passkey$/ }).waitFor();
    await page.getByText('On one device only').waitFor(); // not backup eligible
  });
});

test('a passkey steps up before a second passkey is added; passkeys are renamed and removed in Security', { timeout: 300_000 }, async () => {
  await withPage(async (page) => {
    let authenticator = await addVirtualAuthenticator(page);
    const { user, credential: laptopKey } = await userWithPasskey(page, authenticator, 'passkey-manage');

    // A trusted device: the next sign-in takes the password alone, so the session is not a
    // fresh verification and the API asks for a step-up before a change of methods.
    await signOutQuietly(page, authenticator);
    await signIn(page, user);
    await heading(page, 'Use your passkey').waitFor();
    await page.getByLabel('Trust this device for 180 days').check();
    await authenticator.present(true);
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    await heading(page, 'Security').waitFor();
    await signOutQuietly(page, authenticator);
    await signIn(page, user);
    await heading(page, 'Security').waitFor();
    await authenticator.present(true);

    // Rename.
    await page.getByRole('button', { name: 'Rename Passkey' }).click();
    await heading(page, 'Rename your passkey').waitFor();
    const name = page.getByLabel('Name', { exact: true });
    assert.equal(await name.inputValue(), 'Passkey');
    await name.fill('Work laptop');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByText('Your passkey is now called "Work laptop".').waitFor();
    await page.locator('li.item strong', { hasText: 'Passkey: Work laptop' }).waitFor();

    // Adding a passkey needs a step-up: the dialog offers the passkey first, and the browser's
    // prompt is the whole verification (no code to type).
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    await heading(page, 'Add a passkey').waitFor();
    await page.getByLabel('Name (optional)').fill('Phone');
    // The current password is asked again: a passkey signs in without one.
    const current = page.getByLabel('Current password');
    assert.equal(await current.getAttribute('autocomplete'), 'current-password');
    await current.fill(PASSWORD);
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    const dialog = page.getByRole('dialog', { name: "Confirm it's you" });
    await dialog.waitFor();
    const choice = dialog.getByLabel(/^Your passkey/);
    assert.equal(await choice.isChecked(), true, 'the passkey is the first choice');
    await screenshot(page, 'step-up-passkey');
    const elevated = page.waitForResponse((r) => /^\/v1\/me\/step-up\/[^/]+\/verify$/.test(new URL(r.url()).pathname));
    await dialog.getByRole('button', { name: 'Continue' }).click();
    assert.equal((await elevated).status(), 200);
    await dialog.waitFor({ state: 'hidden' });
    // This authenticator already holds the account's passkey (excludeCredentials): refused.
    await page.getByRole('alert').filter({ hasText: 'This device or security key already has a passkey for your account.' }).waitFor();
    await noRawErrors(page);

    // On another authenticator (a phone's synced passkey), the new passkey is made; the session
    // is still elevated, so no second dialog.
    await authenticator.remove();
    authenticator = await addVirtualAuthenticator(page, { defaultBackupEligibility: true, defaultBackupState: true });
    await page.getByRole('button', { name: 'Create a passkey' }).click();
    const done = page.getByText('Your passkey "Phone" is set up. You can use it to sign in.');
    const codesShown = heading(page, 'Save your recovery codes');
    await done.or(codesShown).waitFor();
    if (await codesShown.isVisible()) await confirmSavedCodes(page);
    await done.waitFor();
    const phone = page.locator('li.item', { has: page.locator('strong', { hasText: 'Passkey: Phone' }) });
    await phone.getByText('Synced').waitFor();
    const laptop = page.locator('li.item', { has: page.locator('strong', { hasText: 'Passkey: Work laptop' }) });
    await laptop.getByText('On one device only').waitFor();
    await screenshot(page, 'security-passkeys');

    // Remove the laptop's passkey.
    await page.getByRole('button', { name: 'Remove Passkey: Work laptop' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.getByText('Passkey: Work laptop was removed.').waitFor();
    assert.equal(await laptop.count(), 0);
    await phone.waitFor();

    // The laptop still holds it: its autofill offers it, and the API refuses it with the one
    // passwordless answer, worded for a passkey.
    await authenticator.remove();
    authenticator = await addVirtualAuthenticator(page);
    await authenticator.addCredential(laptopKey);
    const refused = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/passkey/sign-in');
    await page.getByRole('button', { name: 'Sign out' }).click();
    assert.equal((await refused).status(), 401);
    await page.getByRole('alert').filter({ hasText: 'We could not sign you in with this passkey.' }).waitFor();
    await heading(page, 'Sign in').waitFor();
    await noRawErrors(page);
  });
});

test('without the WebAuthn JSON helpers of the browser, the base64url conversion of the client registers a passkey and signs in with it', { timeout: 300_000 }, async () => {
  await withPage(async (page, context) => {
    // As in a browser older than Chromium 129: no parse…FromJSON(), no credential.toJSON().
    await context.addInitScript(() => {
      delete window.PublicKeyCredential.parseCreationOptionsFromJSON;
      delete window.PublicKeyCredential.parseRequestOptionsFromJSON;
      delete window.PublicKeyCredential.prototype.toJSON;
    });
    const authenticator = await addVirtualAuthenticator(page);
    const { user } = await userWithPasskey(page, authenticator, 'passkey-fallback');
    assert.equal(await page.evaluate(() => typeof PublicKeyCredential.parseRequestOptionsFromJSON), 'undefined');
    await signOutQuietly(page, authenticator);
    await authenticator.present(true);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await heading(page, 'Security').waitFor();
    await page.getByText(`Signed in as ${userIdOf(user)}`).waitFor();
  });
});

test('on an IP-address origin the page says where passkeys work instead of offering them', { timeout: 120_000 }, async () => {
  const user = await createUser(uniqueUser('passkey-ip'));
  const hint = `Passkeys need the page opened at ${LOCALHOST}/`;
  assert.notEqual(new URL(API).hostname, 'localhost', 'PORTCULLIS_API_URL is an IP address (127.0.0.1)');
  await withPage(async (page) => {
    const calls = recordApiCalls(page);
    await open(page);
    await heading(page, 'Sign in').waitFor();
    await page.getByText(hint).waitFor();
    await screenshot(page, 'passkey-ip-hint');
    assert.equal(await page.getByRole('link', { name: `${LOCALHOST}/` }).getAttribute('href'), `${LOCALHOST}/`);
    assert.equal(await page.getByRole('button', { name: 'Sign in with a passkey' }).count(), 0);
    await signIn(page, user);
    await heading(page, 'Set up two-step verification').waitFor();
    await page.getByText(hint).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Add a passkey' }).count(), 0);
    assert.equal(calls.some((c) => c.call.includes('passkey')), false, 'no passkey call from an IP-address origin');
  });
});
