// Signing in: password, then whatever the API's challenge asks for — a code (text, voice, email,
// authenticator app, recovery code), enrolment of a first method, or a new password.

import * as api from './api.js';
import * as session from './session.js';
import * as ui from './ui.js';
import { go } from './nav.js';
import { codeScreen, totpSetupScreen, recoveryCodesScreen, phoneFields, sentLede } from './screens.js';

const SEND_METHODS = ['sms', 'voice', 'email'];

// The sign-in in progress: { userId, challengeId, methods }.
let flow = null;

export function showSignIn({ notice, error } = {}) {
  flow = null;
  const refs = ui.render('t-sign-in');
  ui.say(refs.notice, notice);
  if (error) ui.showError(refs.error, error);
  refs.forgot.addEventListener('click', () => go.forgot());
  const password = refs.form.elements.password;
  ui.handleForm(refs.form, refs.error, async (values) => {
    const userId = values.user_id.trim();
    const deviceToken = session.deviceToken(userId);
    const answer = await api.signIn(userId, values.password, deviceToken);
    // A token that did not skip the code is no longer valid for this user: forget it.
    if (deviceToken && answer.status !== 'signed_in') session.forgetDevice(userId);
    flow = { userId, challengeId: answer.challenge_id, methods: answer.methods || [] };
    await route(answer);
  }, (error) => {
    if (error.code === 'invalid_credentials') {
      password.value = '';
      password.focus();
    }
    return false;
  });
}

function expired(error) {
  showSignIn({ error });
}

/** Goes on from any answer that has a sign-in `status`. */
async function route(answer) {
  switch (answer.status) {
    case 'signed_in':
      return finish(answer);
    case 'mfa_required':
      return firstMethod();
    case 'mfa_enrolment_required':
      return showEnrol();
    case 'password_change_required':
      flow.challengeId = answer.challenge_id;
      return showRequiredPassword();
    default:
      throw new api.ApiError({ code: 'unknown' });
  }
}

async function finish(answer) {
  const tokens = answer.tokens || answer;
  const { userId } = flow;
  session.start(userId, tokens);
  flow = null;
  if (answer.device_token) {
    session.saveDeviceToken(userId, answer.device_token);
  }
  let notice = null;
  if (Number.isInteger(answer.recovery_codes_remaining)) {
    const n = answer.recovery_codes_remaining;
    notice = `You signed in with a recovery code. You have ${n} recovery code${n === 1 ? '' : 's'} left.`;
    if (n <= 3) notice += ' Get a new set soon, so you are not locked out.';
  }
  if (Array.isArray(answer.recovery_codes) && answer.recovery_codes.length) {
    recoveryCodesScreen(answer.recovery_codes, () => go.account({ notice }));
  } else {
    go.account({ notice });
  }
}

// ---- mfa_required ------------------------------------------------------------------------------

function sendMethods() {
  return flow.methods.filter((m) => SEND_METHODS.includes(m.method));
}

function otherMethods() {
  return flow.methods.filter((m) => !SEND_METHODS.includes(m.method));
}

function firstMethod() {
  if (sendMethods().length) return showChoose();
  const totp = flow.methods.find((m) => m.method === 'totp');
  if (totp) return showTotpCode(totp);
  return showRecoveryCode();
}

function showChoose({ expanded = false } = {}) {
  const refs = ui.render('t-choose');
  const sends = sendMethods();
  const others = otherMethods();

  refs.choices.replaceChildren(...sends.map((m, i) => ui.el('div', { class: 'check' },
    ui.el('input', { type: 'radio', id: `method-${i}`, name: 'method', value: String(i), checked: i === 0 }),
    ui.el('label', { for: `method-${i}`, text: ui.channelLabel(m.method, m.phone || m.email) }))));
  if (!sends.length) {
    refs.form.hidden = true;
    expanded = true;
  }
  ui.handleForm(refs.form, refs.error, async (values) => {
    const method = sends[Number(values.method)];
    const sent = await api.sendCode(flow.challengeId, method.method, method.factor_id);
    showSentCode(method, sent);
  }, onExpired);

  const labels = { totp: 'Use a code from your authenticator app', recovery_code: 'Use a recovery code' };
  refs.otherList.replaceChildren(...others.filter((m) => labels[m.method]).map((m) => {
    const button = ui.el('button', { type: 'button', class: 'button button--secondary', text: labels[m.method] });
    button.addEventListener('click', () => (m.method === 'totp' ? showTotpCode(m) : showRecoveryCode()));
    return ui.el('li', {}, button);
  }));
  if (!refs.otherList.children.length) refs.othersBlock.hidden = true;
  const setExpanded = (open) => {
    refs.others.hidden = !open;
    refs.toggle.setAttribute('aria-expanded', String(open));
  };
  setExpanded(expanded);
  if (!sends.length) refs.toggle.hidden = true;
  refs.toggle.addEventListener('click', () => {
    const open = refs.others.hidden;
    setExpanded(open);
    if (open) refs.otherList.querySelector('button')?.focus();
  });
  refs.cancel.addEventListener('click', () => showSignIn());
}

function onExpired(error) {
  if (error.code === 'challenge_expired') {
    expired(error);
    return true;
  }
  return false;
}

function tryAnother() {
  showChoose({ expanded: true });
}

function showSentCode(method, sent) {
  codeScreen({
    title: 'Enter your code',
    lede: sentLede(method.method, sent.sent_to),
    sent,
    trust: true,
    onSubmit: async ({ code, trust }) => {
      await route(await api.verify(flow.challengeId, { method: method.method, code, factorId: method.factor_id, trustDevice: trust }));
    },
    onResend: () => api.sendCode(flow.challengeId, method.method, method.factor_id),
    onOther: tryAnother,
    onExpired: expired,
  });
}

function showTotpCode(method) {
  codeScreen({
    title: 'Enter the code from your authenticator app',
    lede: 'Open your authenticator app and enter the 6-digit code it shows for Portcullis.',
    totp: true,
    trust: true,
    onSubmit: async ({ code, trust }) => {
      await route(await api.verify(flow.challengeId, { method: 'totp', code, factorId: method.factor_id, trustDevice: trust }));
    },
    onOther: tryAnother,
    onExpired: expired,
  });
}

function showRecoveryCode() {
  codeScreen({
    title: 'Enter a recovery code',
    lede: 'Use one of the recovery codes you saved when you set up your authenticator app.',
    recovery: true,
    trust: true,
    onSubmit: async ({ code, trust }) => {
      await route(await api.redeemRecoveryCode(flow.challengeId, code, trust));
    },
    onOther: tryAnother,
    onExpired: expired,
  });
}

// ---- mfa_enrolment_required -----------------------------------------------------------------

function showEnrol() {
  const refs = ui.render('t-enrol');
  phoneFields(refs.phoneFields);
  ui.handleForm(refs.phoneForm, refs.error, async (values) => {
    const phone = ui.compactPhone(values.phone);
    const pending = await api.enrolPhone(flow.challengeId, phone, values.delivery);
    showEnrolCode(pending, values.delivery);
  }, onExpired);
  ui.handleForm(refs.emailForm, refs.error, async (values) => {
    const pending = await api.enrolEmail(flow.challengeId, values.email.trim());
    showEnrolCode(pending, 'email');
  }, onExpired);
  ui.onClick(refs.totp, refs.error, async () => {
    try {
      const data = await api.enrolTotp(flow.challengeId);
      totpSetupScreen({
        data,
        onSubmit: async (code) => route(await api.verifyEnrolment(flow.challengeId, data.factor_id, code)),
        onBack: showEnrol,
        onExpired: expired,
      });
    } catch (error) {
      if (!onExpired(error)) throw error;
    }
  });
  refs.cancel.addEventListener('click', () => showSignIn());
}

function showEnrolCode(pending, delivery) {
  codeScreen({
    title: delivery === 'email' ? 'Confirm your email address' : 'Confirm your phone',
    lede: sentLede(delivery, pending.sent_to),
    sent: pending,
    submitLabel: 'Confirm and sign in',
    onSubmit: async ({ code }) => {
      await route(await api.verifyEnrolment(flow.challengeId, pending.factor_id, code));
    },
    onResend: () => api.sendCode(flow.challengeId, delivery, pending.factor_id),
    onBack: showEnrol,
    backLabel: delivery === 'email' ? 'Use a different address or method' : 'Use a different number or method',
    onExpired: expired,
  });
}

// ---- password_change_required ---------------------------------------------------------------

function showRequiredPassword() {
  const refs = ui.render('t-new-password');
  refs.lede.textContent = 'Your password has expired or must be changed. Choose a new one to finish signing in.';
  refs.username.value = flow.userId;
  refs.back.hidden = false;
  refs.back.addEventListener('click', () => showSignIn());
  ui.handleForm(refs.form, refs.error, async (values) => {
    if (values.new_password !== values.confirm_password) {
      ui.say(refs.error, "The two passwords don't match. Please type the same new password twice.");
      return;
    }
    await route(await api.setRequiredPassword(flow.challengeId, values.new_password));
  }, onExpired);
}

