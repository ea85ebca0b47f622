// The signed-in area: add an authenticator, regenerate recovery codes, change the phone number,
// read the security activity, remove a method. Right after a sign-in with a code the session
// counts as a fresh verification, so none of these asks for a step-up here.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  createUser, uniqueUser, freshPhone, withPage, open, signIn, heading, screenshot,
  enrolPhoneAtFirstSignIn, scanQrAndVerify, confirmSavedCodes, smsCodeAfter,
} from '../lib/harness.js';

const AREA = '617';

test('methods and recovery codes are managed from the security screen', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('manage'));
  const phone = freshPhone(AREA);
  const newPhone = freshPhone(AREA);
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    await enrolPhoneAtFirstSignIn(page, phone);

    // Add an authenticator app from the session.
    await page.getByRole('button', { name: 'Add an authenticator app' }).click();
    const first = await scanQrAndVerify(page);
    assert.equal(first.codes.length, 10);
    await confirmSavedCodes(page);
    await page.getByText('Your authenticator app is set up.').waitFor();
    await page.locator('li.item strong', { hasText: 'Authenticator app' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Add an authenticator app' }).isVisible(), false);

    // New recovery codes replace the old set.
    await page.getByRole('button', { name: 'Get new recovery codes' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Get new codes' }).click();
    await heading(page, 'Save your recovery codes').waitFor();
    const second = (await page.locator('ol.codes li').allTextContents()).map((c) => c.trim());
    assert.equal(second.length, 10);
    assert.equal(second.some((c) => first.codes.includes(c)), false, 'a new set');
    await confirmSavedCodes(page);
    await page.getByText('Your new recovery codes are ready. The old ones no longer work.').waitFor();

    // Change the phone number: the new number is confirmed with a code sent to it.
    await page.getByRole('button', { name: /^Change number/ }).click();
    await heading(page, 'Change your phone number').waitFor();
    await page.getByLabel('Mobile number').fill(newPhone);
    const code = await smsCodeAfter(newPhone, async () => {
      await page.getByRole('button', { name: 'Send me a code' }).click();
      await heading(page, 'Confirm your new number').waitFor();
    });
    await page.getByLabel('6-digit code').fill(code);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByText('Your phone number has been changed.').waitFor();
    await page.locator('li.item strong', { hasText: `Mobile phone ***-***-${newPhone.slice(-4)}` }).waitFor();
    assert.equal(await page.locator('li.item strong', { hasText: `***-***-${phone.slice(-4)}` }).count(), 0);

    // The activity lists what happened, in words.
    await page.getByRole('button', { name: 'Activity' }).click();
    await heading(page, 'Recent security activity').waitFor();
    const table = page.getByRole('table');
    await table.getByRole('cell', { name: 'Signed in', exact: true }).first().waitFor();
    await table.getByRole('cell', { name: 'Sign-in method added' }).first().waitFor();
    await screenshot(page, 'activity');

    // Remove the authenticator.
    await page.getByRole('button', { name: 'Security' }).click();
    await page.getByRole('button', { name: 'Remove Authenticator app' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click();
    await page.getByText('Authenticator app was removed.').waitFor();
    assert.equal(await page.locator('li.item strong', { hasText: 'Authenticator app' }).count(), 0);
  });
});
