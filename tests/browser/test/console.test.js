// The admin and support console (web/js/console.js), driven as operators use it: two admins
// made with the operator CLI; an invitation sent from the console and accepted from the emailed
// link; an MFA reset that one admin requests and cannot approve and a second admin approves from
// the queue; an unlock of a locked user through the step-up dialog; the delivery list showing a
// code just sent (never the code); and a non-admin, who never sees the console and whose calls
// to its routes answer 403.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  API, PASSWORD, EMULATOR_KIND, createUser, uniqueUser, freshPhone, emailsTo, smsCodeAfter, smsRecordsTo, waitFor, withPage, open,
  signIn, heading, enrolAuthenticatorAtFirstSignIn, confirmSavedCodes, firstSignInWithAuthenticator, submitNewPassword,
  freshTotp, screenshot,
} from '../lib/harness.js';

const AREA = '315';
// Emails leave through an outbox that the local endpoint drains: give them time.
const MAIL_WITHIN = { within: 30_000 };

/** A new admin (operator CLI) signs in for the first time and sets up an authenticator. */
async function signInNewAdmin(page, label) {
  const adminId = await createUser(uniqueUser(label), PASSWORD, ['admin']);
  const { secret } = await firstSignInWithAuthenticator(page, adminId);
  return { adminId, secret };
}

async function openConsole(page) {
  await page.getByRole('button', { name: 'Admin console' }).click();
  await heading(page, 'Find a user').waitFor();
}

async function findAndOpen(page, userId) {
  await page.getByRole('button', { name: 'Find a user' }).click();
  await heading(page, 'Find a user').waitFor();
  await page.getByLabel('User ID or email starts with').fill(userId);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByText('1 user found.').waitFor();
  await page.getByRole('button', { name: userId, exact: true }).click();
  await heading(page, userId).waitFor();
  await page.locator('[data-ref="body"]').waitFor();
}

/** The text of one fact of the user detail ("Password lock" → "Not locked"). */
async function fact(page, term) {
  return (await page.locator(`dd[data-fact="${term}"]`).textContent()).trim();
}

/** A user who sets up an authenticator in the browser (their first sign-in). */
async function userWithAuthenticator(label) {
  const user = await createUser(uniqueUser(label));
  let secret;
  await withPage(async (page) => {
    ({ secret } = await firstSignInWithAuthenticator(page, user));
  });
  return { user, secret };
}

/** The user's next sign-in, in a browser of its own, asks them to set up two-step verification. */
async function nextSignInAsksForEnrolment(user) {
  await withPage(async (page) => {
    await open(page);
    await signIn(page, user);
    await heading(page, 'Set up two-step verification').waitFor();
  });
}

/** Presses Tab until `locator` has the focus (at most `max` times). */
async function tabTo(page, locator, max = 10) {
  for (let i = 0; i < max; i += 1) {
    if (await locator.evaluate((node) => node === document.activeElement)) return;
    await page.keyboard.press('Tab');
  }
  assert.fail(`could not reach ${locator} with Tab`);
}

/** The request's item in the Approvals list. */
const requestItem = (page, title) => page.locator('li.item', { hasText: title });

test('admin A invites a user from the console, and the user is on-boarded from the emailed link', { timeout: 300_000 }, async () => {
  const invited = uniqueUser('console-invited');
  const invitedAdmin = uniqueUser('console-invited-admin');
  await withPage(async (page) => {
    await signInNewAdmin(page, 'console-admin-a');
    await openConsole(page);
    await page.getByRole('button', { name: 'Invite a user' }).click();
    await heading(page, 'Invite a user').waitFor();
    await page.getByLabel('User ID', { exact: true }).fill(invited);
    await page.getByLabel('Email address').fill(invited);
    await page.getByRole('button', { name: 'Send invitation' }).click();
    const sent = page.getByRole('status').filter({ hasText: 'Invitation sent to' });
    await sent.waitFor();
    const sentText = await sent.textContent();
    assert.match(sentText, new RegExp(`for ${invited.replace(/[.-]/g, '\\$&')}\\.`));
    assert.match(sentText, /^Invitation sent to c\*\*\*@b\*\*\*\.example for /, 'the address is shown masked');
    assert.ok(!sentText.includes(`to ${invited}`), 'the address is not shown in full');

    // An administrator's invitation is a request: nothing is created or sent before a second admin approves.
    await page.getByLabel('User ID', { exact: true }).fill(invitedAdmin);
    await page.getByLabel('Email address').fill(invitedAdmin);
    await page.getByLabel('Administrator').check();
    await page.getByRole('button', { name: 'Send invitation' }).click();
    await page.getByRole('status').filter({ hasText: 'Waiting for a second admin' }).waitFor();
    await screenshot(page, 'console-invite');
    await page.getByRole('button', { name: 'Approvals' }).click();
    await heading(page, 'Approvals').waitFor();
    const mine = requestItem(page, `Invite as an administrator: ${invitedAdmin}`);
    await mine.getByText('Waiting for a second admin').waitFor();
    assert.equal(await mine.getByRole('button', { name: /Approve/ }).count(), 0, 'no Approve button on one\'s own request');

    // The invited user, in another browser: the emailed link, a password, then enrolment.
    const mails = await waitFor(() => emailsTo(invited), 1, `an invitation to ${invited}`, MAIL_WITHIN);
    const link = /(\/welcome\?token=[A-Za-z0-9_-]+)/.exec(mails[mails.length - 1].body);
    assert.ok(link, 'an invitation link in the email');
    const password = 'an invited person\'s passphrase';
    await withPage(async (user) => {
      await open(user, link[1]);
      await heading(user, 'Welcome to Portcullis').waitFor();
      await submitNewPassword(user, 'Set password', password);
      await heading(user, 'Sign in').waitFor();
      await signIn(user, invited, password);
      await enrolAuthenticatorAtFirstSignIn(user);
      await confirmSavedCodes(user);
      assert.equal(await user.getByRole('button', { name: 'Admin console' }).count(), 0, 'no console for a user without the admin role');
    });
    assert.equal((await emailsTo(invitedAdmin)).length, 0, 'nothing was sent to the admin invitee');

    // Back in the console: the user is on-boarded.
    await findAndOpen(page, invited);
    assert.equal(await fact(page, 'Status'), 'Active');
    assert.match(await fact(page, 'Password'), /^Set /);
    assert.match(await fact(page, 'Last sign-in'), /\d{4}/);
    await page.locator('ul[data-ref="factors"] li', { hasText: 'Authenticator app' }).waitFor();
    const events = page.locator('tbody[data-ref="events"]');
    await events.getByText('Invitation accepted').waitFor();
    await events.getByText('Signed in').first().waitFor();
  });
});

test('an MFA reset takes two admins: A requests it and cannot approve it, B approves it from the queue', { timeout: 300_000 }, async () => {
  const { user } = await userWithAuthenticator('console-reset');
  const reason = 'Lost their phone; identity checked on a video call with the branch.';
  let adminA;
  let requestId;
  await withPage(async (page) => {
    adminA = await signInNewAdmin(page, 'console-admin-a');
    await openConsole(page);
    await findAndOpen(page, user);
    await page.locator('ul[data-ref="factors"] li', { hasText: 'Authenticator app' }).waitFor();
    await page.getByLabel('Reason for the reset').fill(reason);
    await page.getByRole('button', { name: 'Request a reset' }).click();
    await page.getByRole('status').filter({ hasText: 'Reset requested. Waiting for a second admin' }).waitFor();
    // Nothing changed yet.
    await page.getByRole('button', { name: 'Approvals' }).click();
    await heading(page, 'Approvals').waitFor();
    const item = requestItem(page, `Reset two-step verification: ${user}`);
    await item.getByText('Waiting for a second admin').waitFor();
    await item.getByText(`Reason: ${reason}`).waitFor();
    await item.getByText('Requested by you').waitFor();
    assert.equal(await item.getByRole('button', { name: /Approve/ }).count(), 0, 'A is offered no Approve button');
    await screenshot(page, 'console-requests-waiting');
    requestId = await item.getAttribute('data-request-id');
    assert.match(requestId, /^rq/);
    // Hidden is not the protection: the API refuses A's approval (the console's own call, from this page).
    const refused = await page.evaluate(async (id) => {
      const api = await import('/js/api.js');
      try {
        await api.adminApprove(id);
        return 'approved';
      } catch (error) {
        return `${error.status} ${error.code}`;
      }
    }, requestId);
    assert.equal(refused, '403 forbidden');
  });

  await withPage(async (page) => {
    await signInNewAdmin(page, 'console-admin-b');
    await openConsole(page);
    await page.getByRole('button', { name: 'Approvals' }).click();
    await heading(page, 'Approvals').waitFor();
    const item = page.locator(`li.item[data-request-id="${requestId}"]`);
    await item.getByText(`Requested by ${adminA.adminId}`).waitFor();
    await item.getByText(`Reason: ${reason}`).waitFor();
    await screenshot(page, 'console-approve');
    await item.getByRole('button', { name: `Approve Reset two-step verification: ${user}` }).click();
    const dialog = page.locator('#confirm-dialog');
    await dialog.getByText('sign-in methods, recovery codes and trusted devices are removed').waitFor();
    await dialog.getByRole('button', { name: 'Approve' }).click();
    await page.getByRole('status').filter({ hasText: `Approved and carried out: Reset two-step verification: ${user}.` }).waitFor();
    assert.equal(await page.locator(`li.item[data-request-id="${requestId}"]`).count(), 0, 'gone from the pending queue');
    // With the approved ones shown, it is there, approved by B.
    await page.getByLabel('Show approved requests too').check();
    await page.locator(`li.item[data-request-id="${requestId}"]`).getByText('Approved by you').waitFor();

    // B sees the effect in the user's detail: no method left, and both admins in the trail.
    await findAndOpen(page, user);
    await page.getByText('No sign-in methods: they set one up at their next sign-in.').waitFor();
    assert.equal(await fact(page, 'Recovery codes left'), '0');
    const events = page.locator('tbody[data-ref="events"]');
    await events.locator('tr', { hasText: 'Two-step verification reset by support' }).getByText(`requested by ${adminA.adminId}`).waitFor();
    await events.locator('tr', { hasText: 'Reset of two-step verification requested' }).getByText(adminA.adminId).waitFor();
    await events.locator('tr', { hasText: 'Reset of two-step verification refused' }).waitFor();
  });

  // The user must set up two-step verification again.
  await nextSignInAsksForEnrolment(user);
});

test('admin A unlocks a locked user, with the keyboard and through the step-up dialog', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('console-locked'));
  let last;
  for (let i = 1; i <= 5; i += 1) {
    last = await fetch(`${API}/v1/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: user, password: `not the password ${i}!` }),
    });
  }
  assert.equal(last.status, 423, 'the 5th wrong password locks the user ID');

  await withPage(async (page) => {
    const admin = await signInNewAdmin(page, 'console-admin-a');
    // Keyboard only: to the console, search, open the user.
    await page.getByRole('button', { name: 'Admin console' }).focus();
    await page.keyboard.press('Enter');
    await heading(page, 'Find a user').waitFor();
    await page.getByLabel('User ID or email starts with').focus();
    await page.keyboard.type(user);
    await page.keyboard.press('Enter');
    await page.getByText('1 user found.').waitFor();
    const row = page.locator('tbody[data-ref="rows"] tr', { hasText: user });
    await row.getByText('Locked', { exact: true }).waitFor();
    await screenshot(page, 'console-search');
    await tabTo(page, page.getByRole('button', { name: user, exact: true }));
    await page.keyboard.press('Enter');
    await heading(page, user).waitFor();
    await page.locator('[data-ref="body"]').waitFor();
    assert.match(await fact(page, 'Password lock'), /^Locked until /);
    await page.locator('tbody[data-ref="events"]').getByText('User ID locked after failed attempts').waitFor();
    await screenshot(page, 'console-user');

    // The admin's session is elevated for 5 minutes after the sign-in (admins always give a
    // code), so this test cannot wait for the API to ask for a step-up: the first unlock is
    // answered here with the API's own 403 step_up_required. The step-up that follows is real
    // (POST /v1/me/step-up and its verify), and so is the unlock sent again with its token.
    let asked = 0;
    await page.route((url) => url.pathname.endsWith('/unlock'), async (route) => {
      asked += 1;
      if (asked > 1) return route.continue();
      return route.fulfill({
        status: 403,
        contentType: 'application/problem+json',
        body: JSON.stringify({ type: 'about:blank', title: 'A fresh verification is required', status: 403, code: 'step_up_required' }),
      });
    });
    await tabTo(page, page.getByRole('button', { name: 'Unlock' }), 25);
    await page.keyboard.press('Enter');
    const dialog = page.locator('#step-up-dialog');
    await dialog.getByRole('heading', { name: "Confirm it's you" }).waitFor();
    await dialog.getByLabel('Code from your authenticator app').check();
    await dialog.getByRole('button', { name: 'Continue' }).click();
    await dialog.getByLabel('6-digit code').fill(await freshTotp(admin.secret));
    await screenshot(page, 'console-step-up');
    const [verified] = await Promise.all([
      page.waitForResponse((r) => /\/v1\/me\/step-up\/[^/]+\/verify$/.test(new URL(r.url()).pathname)),
      page.keyboard.press('Enter'),
    ]);
    assert.equal(verified.status(), 200, 'the step-up is verified by the API');
    await page.getByRole('status').filter({ hasText: `${user} is unlocked` }).waitFor();
    assert.equal(asked, 2, 'the unlock was sent again after the step-up');
    assert.equal(await fact(page, 'Password lock'), 'Not locked');
    assert.equal(await fact(page, 'Second-factor lock'), 'Not locked');
    await page.locator('tbody[data-ref="events"] tr', { hasText: 'Unlocked by an administrator' }).getByText(`${admin.adminId} (you)`).waitFor();
  });

  // The user signs in again: the password is evaluated, and the first sign-in asks for enrolment.
  await nextSignInAsksForEnrolment(user);
});

test('the delivery list shows the code a user was just sent, never the code itself', { timeout: 300_000 }, async () => {
  const user = await createUser(uniqueUser('console-delivery'));
  const phone = freshPhone(AREA);
  const last4 = phone.slice(-4);
  await withPage(async (admin) => {
    await signInNewAdmin(admin, 'console-admin-a');

    let code;
    await withPage(async (page) => {
      await open(page);
      await signIn(page, user);
      await heading(page, 'Set up two-step verification').waitFor();
      await page.getByLabel('Mobile number').fill(phone);
      await page.getByLabel('Text message (SMS)').check();
      code = await smsCodeAfter(phone, async () => {
        await page.getByRole('button', { name: 'Send me a code' }).click();
        await heading(page, 'Confirm your phone').waitFor();
      });
    });

    await openConsole(admin);
    const [answer] = await Promise.all([
      admin.waitForResponse((r) => new URL(r.url()).pathname.endsWith('/deliveries')),
      findAndOpen(admin, user),
    ]);
    const body = await answer.text();
    assert.equal(answer.status(), 200);
    assert.ok(!body.includes(code), 'the API does not send the code');
    const rows = admin.locator('tbody[data-ref="deliveries"] tr');
    await rows.first().waitFor();
    const newest = (await rows.first().locator('td').allTextContents()).map((t) => t.trim());
    assert.equal(newest[1], 'Set-up code');
    assert.equal(newest[2], 'Text message');
    assert.equal(newest[3], `***-***-${last4}`);
    assert.equal(newest[4], 'Sent');
    const messageId = (await rows.first().locator('code.message-id').textContent()).trim();
    assert.ok(messageId.length >= 8, `a provider message id (${messageId})`);
    assert.equal(JSON.parse(body).deliveries[0].provider_message_id, messageId);
    // It is the text that carried the code: the provider's id of that very message.
    const sms = (await smsRecordsTo(phone)).filter((m) => m.text.includes(code));
    assert.equal(sms.length, 1, 'one text carried the code');
    if (EMULATOR_KIND === 'moto' || sms[0].messageId) assert.equal(sms[0].messageId, messageId, 'the listed id is the SNS message id of the text with the code');
    assert.ok(!(await admin.locator('main').textContent()).includes(code), 'the page does not show the code');
    await admin.locator('tbody[data-ref="events"]').getByText('One-time code sent').waitFor();
    await screenshot(admin, 'console-deliveries');
  });
});

test('admin A grants and removes roles, deactivates, reactivates and requires a new password; for an admin each waits for a second admin', { timeout: 300_000 }, async () => {
  const { user, secret } = await userWithAuthenticator('console-deactivate');
  const otherAdmin = await createUser(uniqueUser('console-admin-c'), PASSWORD, ['admin']);
  await withPage(async (page) => {
    const admin = await signInNewAdmin(page, 'console-admin-a');
    await openConsole(page);
    await findAndOpen(page, user);
    const dialog = page.locator('#confirm-dialog');

    // Support is granted and removed at once; the administrator role waits for a second admin.
    await page.getByLabel('Role to grant').selectOption('support');
    await page.getByRole('button', { name: 'Grant the role' }).click();
    await page.getByRole('status').filter({ hasText: `${user} now has the role Support.` }).waitFor();
    assert.equal(await fact(page, 'Roles'), 'support');
    await page.getByRole('button', { name: 'Remove the role Support' }).click();
    await dialog.getByRole('button', { name: 'Remove the role' }).click();
    await page.getByRole('status').filter({ hasText: `${user} no longer has the role Support.` }).waitFor();
    assert.equal(await fact(page, 'Roles'), 'None');
    await page.getByLabel('Role to grant').selectOption('admin');
    await page.getByLabel('Reason for the role (optional)').fill('Joins the security operations team.');
    await page.getByRole('button', { name: 'Grant the role' }).click();
    await page.getByRole('status').filter({ hasText: 'Waiting for a second admin: granting the administrator role' }).waitFor();
    assert.equal(await fact(page, 'Roles'), 'None', 'not granted by one admin');
    const events = page.locator('tbody[data-ref="events"]');
    await events.locator('tr', { hasText: 'Role granted' }).getByText(`${admin.adminId} (you)`).waitFor();
    await events.locator('tr', { hasText: 'Role removed' }).getByText(`${admin.adminId} (you)`).waitFor();
    await events.locator('tr', { hasText: 'Administrator role requested' }).getByText('Joins the security operations team.').waitFor();
    await page.getByRole('button', { name: 'Deactivate' }).click();
    await dialog.getByText('They are signed out everywhere at once').waitFor();
    await dialog.getByRole('button', { name: 'Deactivate' }).click();
    await page.getByRole('status').filter({ hasText: `${user} is deactivated and signed out everywhere.` }).waitFor();
    assert.equal(await fact(page, 'Status'), 'Deactivated');
    assert.equal(await page.getByRole('button', { name: 'Deactivate' }).count(), 0, 'no Deactivate on a deactivated user');

    // The user, meanwhile, cannot sign in even with the right password.
    await withPage(async (other) => {
      await open(other);
      await signIn(other, user);
      await other.getByRole('alert').filter({ hasText: 'This user ID has been deactivated' }).waitFor();
    });

    await page.getByRole('button', { name: 'Reactivate' }).click();
    await page.getByRole('status').filter({ hasText: `${user} is active again and can sign in.` }).waitFor();
    assert.equal(await fact(page, 'Status'), 'Active');
    await page.getByRole('button', { name: 'Require a new password' }).click();
    await dialog.getByRole('button', { name: 'Require a new password' }).click();
    await page.getByRole('status').filter({ hasText: `${user} must choose a new password at their next sign-in.` }).waitFor();
    assert.equal(await fact(page, 'New password required'), 'Yes, after the next sign-in');
    for (const what of ['Deactivated by an administrator', 'Reactivated by an administrator', 'Password change required by an administrator']) {
      await events.locator('tr', { hasText: what }).getByText(`${admin.adminId} (you)`).waitFor();
    }

    // After the code, the user must choose a new password.
    await withPage(async (other) => {
      await open(other);
      await signIn(other, user);
      await heading(other, 'Enter the code from your authenticator app').waitFor();
      await other.getByLabel('6-digit code').fill(await freshTotp(secret));
      await other.getByRole('button', { name: 'Continue' }).click();
      await heading(other, 'Choose a new password').waitFor();
    });

    // Another admin is not deactivated by one admin: a request for a second one.
    await findAndOpen(page, otherAdmin);
    await page.getByRole('button', { name: 'Deactivate' }).click();
    await dialog.getByRole('button', { name: 'Deactivate' }).click();
    await page.getByRole('status').filter({ hasText: 'Waiting for a second admin: deactivating an administrator' }).waitFor();
    assert.equal(await fact(page, 'Status'), 'Active');
    await page.getByRole('button', { name: 'Approvals' }).click();
    await requestItem(page, `Deactivate an administrator: ${otherAdmin}`).getByText('Waiting for a second admin').waitFor();
    await requestItem(page, `Grant the administrator role: ${user}`).getByText('Reason: Joins the security operations team.').waitFor();
  });
});

test('a non-admin never sees the console, and its routes answer 403', { timeout: 300_000 }, async () => {
  const other = await createUser(uniqueUser('console-subject'));
  const user = await createUser(uniqueUser('console-nonadmin'));
  await withPage(async (page) => {
    await firstSignInWithAuthenticator(page, user);
    await page.getByRole('button', { name: 'Trusted devices' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Admin console' }).count(), 0, 'no console in the navigation');
    assert.equal(await page.locator('#console-nav').isHidden(), true);
    // The session has just given a code, so a refusal is the role's, not a step-up's: every
    // route the console calls, with this page's own session.
    const answers = await page.evaluate(async (target) => {
      const api = await import('/js/api.js');
      const calls = {
        search: () => api.adminSearch('console'),
        detail: () => api.adminUser(target),
        events: () => api.adminEvents(target),
        deliveries: () => api.adminDeliveries(target),
        invite: () => api.adminInvite({ user_id: `x-${target}`, email: `x-${target}` }),
        unlock: () => api.adminAct(target, 'unlock'),
        deactivate: () => api.adminAct(target, 'deactivate'),
        reactivate: () => api.adminAct(target, 'reactivate'),
        force: () => api.adminAct(target, 'force-password-change'),
        mfaReset: () => api.adminRequestMfaReset(target, 'a reason that is long enough'),
        requests: () => api.adminRequests(),
        approve: () => api.adminApprove('rq_not_mine'),
      };
      const out = {};
      for (const [name, call] of Object.entries(calls)) {
        try {
          await call();
          out[name] = 'allowed';
        } catch (error) {
          out[name] = `${error.status} ${error.code}`;
        }
      }
      return out;
    }, other);
    for (const [route, answer] of Object.entries(answers)) assert.equal(answer, '403 forbidden', route);
    assert.equal(Object.keys(answers).length, 12);
  });
});
