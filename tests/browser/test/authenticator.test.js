// Authenticator apps: enrolment by scanning the QR code shown on the page, recovery codes shown
// once, sign-in with a TOTP code, and sign-in with a recovery code.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  createUser, uniqueUser, withPage, open, signIn, signOut, heading, screenshot, signInWithTotp,
  enrolAuthenticatorAtFirstSignIn, confirmSavedCodes, firstSignInWithAuthenticator,
} from '../lib/harness.js';

test('an authenticator enrolled from the QR code signs in with a TOTP code; recovery codes are shown once', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('totp'));
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    const { secret, codes } = await enrolAuthenticatorAtFirstSignIn(page, { shots: true });

    assert.equal(codes.length, 10, 'ten recovery codes');
    for (const code of codes) assert.match(code, /^[0-9A-Z]{4}(-[0-9A-Z]{4}){3}$/, code);
    assert.equal(new Set(codes).size, 10);
    await page.getByRole('button', { name: 'Copy codes' }).waitFor();
    await page.getByRole('button', { name: 'Print codes' }).waitFor();
    await screenshot(page, 'recovery-codes');
    await confirmSavedCodes(page);

    // Shown once: gone from the page, and the security screen only counts them.
    await page.getByText('You have 10 unused recovery codes.').waitFor();
    assert.equal((await page.content()).includes(codes[0]), false, 'the codes are not on the page any more');
    await page.locator('li.item strong', { hasText: 'Authenticator app' }).waitFor();

    // Sign in again with the app (a code of a later time step than the enrolment's: no replay).
    await signOut(page);
    await signInWithTotp(page, user, secret);
  });
});

test('"Try another method" signs in with a recovery code and shows how many remain', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('recovery'));
  await withPage(async (page) => {
    const { codes } = await firstSignInWithAuthenticator(page, user);
    await signOut(page);

    await signIn(page, user);
    await heading(page, 'Enter the code from your authenticator app').waitFor();
    await page.getByRole('button', { name: 'Try another method' }).click();
    await heading(page, "Confirm it's you").waitFor();
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await heading(page, 'Enter a recovery code').waitFor();
    const input = page.getByLabel('Recovery code');
    assert.equal(await input.getAttribute('autocomplete'), 'off');
    await input.fill(codes[3].toLowerCase()); // case does not matter (Crockford base32)
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Security').waitFor();
    await page.getByText('You signed in with a recovery code. You have 9 recovery codes left.').waitFor();
    await page.getByText('You have 9 unused recovery codes.').waitFor();

    // The same code again is refused.
    await signOut(page);
    await signIn(page, user);
    await page.getByRole('button', { name: 'Try another method' }).click();
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[3]);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('alert').filter({ hasText: 'That code is not correct or has expired.' }).waitFor();
  });
});
