// The send limit (SPEC §3): the 6th code request of a sign-in is refused with the SPEC's text.

import { test } from 'node:test';

import {
  SEND_LIMIT_TEXT, createUser, uniqueUser, freshPhone, withPage, open, signIn, signOut, heading, screenshot,
  enrolPhoneAtFirstSignIn,
} from '../lib/harness.js';

const AREA = '415';

const codesResponse = (page) => page.waitForResponse((r) => r.request().method() === 'POST' && /\/v1\/sign-in\/[^/]+\/codes$/.test(new URL(r.url()).pathname));

test('the 6th code request shows the send-limit message', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('sendlimit'));
  const phone = freshPhone(AREA);
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    await enrolPhoneAtFirstSignIn(page, phone);
    await signOut(page);

    await signIn(page, user);
    await heading(page, "Confirm it's you").waitFor();
    await page.getByRole('button', { name: 'Send code' }).click(); // send 1
    await heading(page, 'Enter your code').waitFor();
    await page.getByText('You can ask for 4 more new codes.').waitFor();
    const resend = page.getByRole('button', { name: 'Send a new code' });
    for (const left of [3, 2, 1, 0]) { // sends 2 to 5
      await Promise.all([codesResponse(page), resend.click()]);
      const text = left === 0 ? 'That was the last new code we can send for this attempt.'
        : left === 1 ? 'You can ask for 1 more new code.' : `You can ask for ${left} more new codes.`;
      await page.getByRole('status').filter({ hasText: text }).waitFor();
    }
    await Promise.all([codesResponse(page), resend.click()]); // the 6th
    await page.getByRole('alert').filter({ hasText: SEND_LIMIT_TEXT }).waitFor();
    await screenshot(page, 'send-limit');
  });
});
