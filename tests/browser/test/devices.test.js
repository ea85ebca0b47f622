// Trusted devices: "Trust this device" skips the code on the next sign-in, the device is listed,
// and removing it brings the code back. A sensitive change on such a session needs a step-up.
// These users use an authenticator app and recovery codes (no message to read back).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  PASSWORD, createUser, uniqueUser, withPage, signIn, signOut, heading, screenshot,
  firstSignInWithAuthenticator, submitNewPassword, signInWithTotp,
} from '../lib/harness.js';

const storedDeviceKeys = (page) => page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('portcullis.trusted-device.')));

/** A new user with an authenticator, signed out again; returns its secret and recovery codes. */
async function userWithAuthenticator(page, prefix) {
  const user = await createUser(uniqueUser(prefix));
  const { secret, codes } = await firstSignInWithAuthenticator(page, user);
  await signOut(page);
  return { user, secret, codes };
}

test('a trusted device skips the code until it is removed', { timeout: 300_000 }, async () => {
  await withPage(async (page) => {
    const { user, secret } = await userWithAuthenticator(page, 'trust');
    await signInWithTotp(page, user, secret, { trust: true });
    assert.equal((await storedDeviceKeys(page)).length, 1, 'the device token is kept for this user');
    await signOut(page);

    // No second factor asked.
    await signIn(page, user);
    await heading(page, 'Security').waitFor();

    await page.getByRole('button', { name: 'Trusted devices' }).click();
    await heading(page, 'Trusted devices').waitFor();
    const item = page.locator('li.item');
    await item.first().waitFor();
    assert.equal(await item.count(), 1);
    await item.getByText('This browser').waitFor();
    await screenshot(page, 'devices');

    await item.getByRole('button', { name: /Remove/ }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('heading', { name: /Remove/ }).waitFor();
    await dialog.getByRole('button', { name: 'Remove' }).click();
    await page.getByText('is no longer trusted').waitFor();
    await page.getByText('You have no trusted devices.').waitFor();
    assert.equal((await storedDeviceKeys(page)).length, 0, 'the token is forgotten with the device');
    await signOut(page);

    // The code is asked again.
    await signIn(page, user);
    await heading(page, 'Enter the code from your authenticator app').waitFor();
  });
});

test('a stale device token is dropped when the API no longer accepts it', { timeout: 300_000 }, async () => {
  await withPage(async (page) => {
    const { user, codes } = await userWithAuthenticator(page, 'stale');
    // Trust the device while signing in with a recovery code.
    await signIn(page, user);
    await page.getByRole('button', { name: 'Try another method' }).click();
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[0]);
    await page.getByLabel('Trust this device for 180 days').check();
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Security').waitFor();
    assert.equal((await storedDeviceKeys(page)).length, 1);

    // Remove every device, then put the token back: as if the device had been removed from
    // another browser, this one now holds a token the API no longer accepts.
    await page.evaluate(() => {
      const key = Object.keys(localStorage).find((k) => k.startsWith('portcullis.trusted-device.'));
      window.__saved = localStorage.getItem(key);
      window.__key = key;
    });
    await page.getByRole('button', { name: 'Trusted devices' }).click();
    await page.getByRole('button', { name: 'Remove all trusted devices' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove all' }).click();
    await page.getByText('1 trusted device was removed.').waitFor();
    assert.equal((await storedDeviceKeys(page)).length, 0, 'removing all forgets the token here');
    await page.evaluate(() => localStorage.setItem(window.__key, window.__saved));
    await signOut(page);
    await signIn(page, user);
    await heading(page, 'Enter the code from your authenticator app').waitFor();
    assert.equal((await storedDeviceKeys(page)).length, 0, 'a token the API refused is forgotten');
  });
});

test('changing the password on a trusted-device session asks for a fresh code first (step-up)', { timeout: 300_000 }, async () => {
  const newPassword = 'another entirely new passphrase';
  await withPage(async (page) => {
    const { user, secret, codes } = await userWithAuthenticator(page, 'stepup');
    await signInWithTotp(page, user, secret, { trust: true });
    await signOut(page);
    await signIn(page, user); // trusted: no code, and so not a fresh verification
    await heading(page, 'Security').waitFor();

    await page.getByRole('button', { name: 'Password' }).click();
    await heading(page, 'Change password').waitFor();
    await page.getByLabel('Current password').fill(PASSWORD);
    await submitNewPassword(page, 'Change password', newPassword);

    const dialog = page.getByRole('dialog', { name: "Confirm it's you" });
    await dialog.waitFor();
    await dialog.getByLabel('Code from your authenticator app').waitFor();
    await dialog.getByLabel('A recovery code').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByLabel('Recovery code', { exact: true }).fill(codes[1]);
    await screenshot(page, 'step-up');
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await heading(page, 'Security').waitFor();
    await page.getByText('Your password has been changed.').waitFor();
    assert.equal((await storedDeviceKeys(page)).length, 0, 'a password change removes the trusted devices');

    await signOut(page);
    await signIn(page, user, newPassword);
    await heading(page, 'Enter the code from your authenticator app').waitFor();
  });
});
