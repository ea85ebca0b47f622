// Forgot password: the same neutral answer for everyone, and the emailed link opens the reset
// page, which takes the token out of the address bar.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  createUser, uniqueUser, emailsTo, waitFor, withPage, open, signIn, heading, submitNewPassword,
} from '../lib/harness.js';

const NEUTRAL = 'If this user ID has an email address, we have sent it a link to reset the password.';

async function askForLink(page, userId) {
  await open(page);
  await page.getByRole('button', { name: 'Forgot your password?' }).click();
  await heading(page, 'Reset your password').waitFor();
  await page.getByLabel('User ID').fill(userId);
  await page.getByRole('button', { name: 'Send reset link' }).click();
  await page.getByText(NEUTRAL).waitFor();
}

test('forgot password answers the same for anyone, and the emailed link resets the password', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('reset'));
  const newPassword = 'a freshly chosen passphrase';
  await withPage(async (page) => {
    await askForLink(page, uniqueUser('nobody')); // unknown: the very same answer
    await askForLink(page, user); // a new user: the only email it gets is this link
    const mails = await waitFor(() => emailsTo(user), 1, `a reset email to ${user}`);
    const token = /token=([A-Za-z0-9_-]+)/.exec(mails[mails.length - 1].body);
    assert.ok(token, 'a reset link in the email');

    await open(page, `/reset?token=${token[1]}`);
    await heading(page, 'Choose a new password').waitFor();
    assert.equal(new URL(page.url()).search, '', 'the token is removed from the address bar');
    // A policy failure is explained (the detail names the rule) and nothing is spent.
    await submitNewPassword(page, 'Save new password', 'password1234');
    await page.getByRole('alert').filter({ hasText: /password/i }).waitFor();
    await submitNewPassword(page, 'Save new password', newPassword);
    await heading(page, 'Sign in').waitFor();
    await page.getByText('Your password has been changed').waitFor();

    await signIn(page, user, newPassword);
    await heading(page, 'Set up two-step verification').waitFor(); // a reset never skips MFA
  });
});
