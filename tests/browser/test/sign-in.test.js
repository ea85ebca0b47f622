// Sign-in with a phone enrolled inside the first sign-in, wrong passwords and the lock,
// keyboard-only use, and the page's Content-Security-Policy.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  API, PASSWORD, createUser, uniqueUser, freshPhone, withPage, open, signIn, signOut, heading,
  enrolPhoneAtFirstSignIn, smsCodeAfter, screenshot, freshTotp, base32Decode,
} from '../lib/harness.js';

const AREA = '212';

test('a first sign-in enrols a phone with a texted code and lands on the signed-in screen', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('enrol-sms'));
  const phone = freshPhone(AREA);
  await withPage(async (page) => {
    await open(page);
    await heading(page, 'Sign in').waitFor();
    await page.getByLabel('User ID').fill(user);
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await screenshot(page, 'sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await enrolPhoneAtFirstSignIn(page, phone, { shots: true });
    await page.getByText(`Signed in as ${user}`).waitFor();
    const last4 = phone.slice(-4);
    await page.locator('li.item strong', { hasText: `Mobile phone ***-***-${last4}` }).waitFor();
    await page.getByText('Codes by text message').waitFor();
    await screenshot(page, 'signed-in');

    // The second sign-in asks for a code: choose text or voice among the masked methods.
    await signOut(page);
    await signIn(page, user);
    await heading(page, "Confirm it's you").waitFor();
    await page.getByLabel(`Text message to ***-***-${last4}`).waitFor();
    await page.getByLabel(`Voice call to ***-***-${last4}`).waitFor();
    // A phone is this user's only method: nothing else to offer.
    assert.equal(await page.getByRole('button', { name: 'Try another method' }).isVisible(), false);
    await screenshot(page, 'choose-method');
    const code = await smsCodeAfter(phone, async () => {
      await page.getByRole('button', { name: 'Send code' }).click();
      await heading(page, 'Enter your code').waitFor();
    });
    await page.getByText(`We sent a text message with a 6-digit code to ***-***-${last4}.`).waitFor();
    const input = page.getByLabel('6-digit code');
    assert.equal(await input.getAttribute('autocomplete'), 'one-time-code');
    assert.equal(await input.getAttribute('inputmode'), 'numeric');
    await page.getByLabel('Trust this device for 180 days').waitFor();
    await page.getByText("Don't tick this on a public or shared computer.").waitFor();
    await screenshot(page, 'code-entry');

    // A wrong code first: a clear message, and the right one still works.
    const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');
    await input.fill(wrong);
    await page.getByRole('button', { name: 'Continue' }).click();
    await page.getByRole('alert').filter({ hasText: 'That code is not correct or has expired.' }).waitFor();
    await input.fill(code);
    await page.getByRole('button', { name: 'Continue' }).click();
    await heading(page, 'Security').waitFor();
  });
});

test('a wrong password gets a clear message, and the 5th failure locks the user ID', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('lock'));
  await withPage(async (page) => {
    await open(page);
    for (let i = 1; i <= 4; i += 1) {
      await signIn(page, user, `not the password ${i}!`);
      const alert = page.getByRole('alert').filter({ hasText: 'The user ID or password is not correct.' });
      await alert.waitFor();
      assert.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '', 'the password field is cleared');
      if (i === 1) await screenshot(page, 'wrong-password');
      await page.getByLabel('User ID').fill(''); // next round types everything again
    }
    await signIn(page, user, 'not the password 5!');
    const locked = page.getByRole('alert').filter({ hasText: 'Too many failed sign-in attempts: this user ID is locked. Try again in 30 minutes.' });
    await locked.waitFor();
    await screenshot(page, 'locked');
    // Locked means locked: even the right password is not evaluated.
    await signIn(page, user, PASSWORD);
    await page.getByRole('alert').filter({ hasText: 'this user ID is locked' }).waitFor();
  });
});

test('an outdated browser is told to update, with what is supported', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('oldbrowser'));
  const oldChrome = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/100.0.4896.127 Safari/537.36';
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    const alert = page.getByRole('alert').filter({ hasText: 'Your browser is not supported, please update it.' });
    await alert.waitFor();
    assert.match(await alert.textContent(), /Chrome 109 or later/);
  }, { userAgent: oldChrome });
});

/** Presses Tab until `locator` has the focus (at most `max` times). */
async function tabTo(page, locator, max = 25) {
  for (let i = 0; i < max; i += 1) {
    if (await locator.evaluate((node) => node === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`could not reach ${locator} with Tab`);
}

test('everything works with the keyboard only: sign-in, authenticator set-up, recovery codes, sign-out', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('keyboard'));
  await withPage(async (page) => {
    await open(page);
    await heading(page, 'Sign in').waitFor();
    // Focus starts on the heading of the step.
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');
    await tabTo(page, page.getByLabel('User ID'));
    await page.keyboard.type(user);
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'password');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');

    await heading(page, 'Set up two-step verification').waitFor();
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1', 'focus moves to the new heading');
    await tabTo(page, page.getByRole('button', { name: 'Set up an authenticator app' }));
    await page.keyboard.press('Enter');
    await heading(page, 'Set up your authenticator app').waitFor();
    // The person reads the key off the screen into their app; the test decodes it the same way.
    const key = (await page.locator('.secret').textContent()).replace(/\s/g, '');
    await tabTo(page, page.getByLabel('6-digit code'));
    await page.keyboard.type(await freshTotp(base32Decode(key)));
    await page.keyboard.press('Enter');

    await heading(page, 'Save your recovery codes').waitFor();
    await tabTo(page, page.getByLabel('I have saved my recovery codes'));
    await page.keyboard.press('Space');
    await tabTo(page, page.getByRole('button', { name: 'Continue' }));
    await page.keyboard.press('Enter');
    await heading(page, 'Security').waitFor();

    // Another section, and signing out, with the keyboard too.
    await tabTo(page, page.getByRole('button', { name: 'Trusted devices' }));
    await page.keyboard.press('Enter');
    await heading(page, 'Trusted devices').waitFor();
    await tabTo(page, page.getByRole('button', { name: 'Sign out' }), 40);
    await page.keyboard.press('Enter');
    await page.getByText('You have signed out.').waitFor();
  });
});

test('the page has no inline script, style or handler, and is served with the strict CSP', async () => {
  const response = await fetch(`${API}/`);
  assert.equal(response.status, 200);
  const csp = response.headers.get('content-security-policy') || '';
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  const html = await response.text();
  for (const [, attrs] of html.matchAll(/<script\b([^>]*)>/gi)) {
    assert.match(attrs, /\bsrc=/, 'every <script> loads a file');
  }
  assert.doesNotMatch(html, /<style\b/i, 'no <style> block');
  assert.doesNotMatch(html, /\sstyle\s*=/i, 'no style attribute');
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i, 'no event-handler attribute');
  assert.doesNotMatch(html, /javascript:/i, 'no javascript: URL');
  // The client-side routes are the same page.
  for (const route of ['/reset?token=x', '/welcome?token=x']) {
    const page = await fetch(`${API}${route}`);
    assert.equal(page.status, 200);
    assert.equal(await page.text(), html);
  }
});
