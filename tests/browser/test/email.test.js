// Email one-time codes (SPEC §13): an address enrolled inside the first sign-in with the code
// emailed to it, then signing in with an emailed code; and an address added from the Security
// page (step-up first: the user already has a factor).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  PASSWORD, createUser, uniqueUser, emailsTo, waitFor, withPage, open, signIn, signOut, heading,
  sixDigits,
} from '../lib/harness.js';

const masked = (address) => {
  const [local, domain] = address.split('@');
  const dot = domain.indexOf('.');
  return `${local[0]}***@${domain[0]}***${domain.slice(dot)}`;
};

test('a first sign-in enrols an email address with an emailed code, and later sign-ins use it', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('enrol-email'));
  const inbox = uniqueUser('inbox');
  await withPage(async (page) => {
    await open(page);
    await heading(page, 'Sign in').waitFor();
    await page.getByLabel('User ID').fill(user);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await heading(page, 'Set up two-step verification').waitFor();
    // A bad address is refused by the server with a clear message (the browser's own check
    // is bypassed by typing one it accepts: no dot in the domain).
    await page.getByLabel('Email address').fill('someone@localhost');
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await page.getByRole('alert').filter({ hasText: /email/i }).waitFor();
    await page.getByLabel('Email address').fill(inbox);
    await page.getByRole('button', { name: 'Email me a code' }).click();
    await heading(page, 'Confirm your email address').waitFor();
    await page.getByText(`We sent an email with a 6-digit code to ${masked(inbox)}.`).waitFor();
    const [first] = await waitFor(() => emailsTo(inbox), 1, `a code to ${inbox}`);
    assert.ok(!first.body.includes(PASSWORD));
    await page.getByLabel('6-digit code').fill(sixDigits(first.body));
    await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    await page.getByText(`Signed in as ${user}`).waitFor();
    await page.locator('li.item strong', { hasText: `Email ${masked(inbox)}` }).waitFor();

    await signOut(page);
    await signIn(page, user);
    await heading(page, "Confirm it's you").waitFor();
    await page.getByLabel(`Email to ${masked(inbox)}`).waitFor();
    await page.getByRole('button', { name: 'Send code' }).click();
    await heading(page, 'Enter your code').waitFor();
    const mails = await waitFor(() => emailsTo(inbox), 2, `a second code to ${inbox}`);
    await page.getByLabel('6-digit code').fill(sixDigits(mails[mails.length - 1].body));
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Security').waitFor();
  });
});

test('an email address is added from the Security page with a code sent to it, within the step-up of the sign-in', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('add-email'));
  const inbox = uniqueUser('inbox');
  const second = uniqueUser('second'); // masked differently from inbox: s***@…
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    await heading(page, 'Set up two-step verification').waitFor();
    await page.getByLabel('Email address').fill(inbox);
    await page.getByRole('button', { name: 'Email me a code' }).click();
    const [first] = await waitFor(() => emailsTo(inbox), 1, `a code to ${inbox}`);
    await page.getByLabel('6-digit code').fill(sixDigits(first.body));
    await page.getByRole('button', { name: 'Confirm and sign in' }).click();
    await heading(page, 'Security').waitFor();
    await page.getByRole('button', { name: 'Add an email address' }).click();
    await heading(page, 'Add an email address').waitFor();
    await page.getByLabel('Email address').fill(second);
    await page.getByRole('button', { name: 'Email me a code' }).click();
    // Signed in moments ago: the step-up of the sign-in still holds, so the code goes out.
    await heading(page, 'Confirm your email address').waitFor();
    const [code] = await waitFor(() => emailsTo(second), 1, `a code to ${second}`);
    await page.getByLabel('6-digit code').fill(sixDigits(code.body));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('Your email address has been added.').waitFor();
    await page.locator('li.item strong', { hasText: `Email ${masked(second)}` }).waitFor();
  });
});
