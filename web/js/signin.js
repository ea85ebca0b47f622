// Signing in: password, then whatever the API's challenge asks for — a passkey or a code (text,
// voice, email, authenticator app, recovery code), enrolment of a first method, or a new
// password. Or without a password: a passkey, from the "Sign in with a passkey" button or from
// the user-ID field's autofill (conditional mediation).

import * as api from './api.js';
import * as session from './session.js';
import * as ui from './ui.js';
import { go } from './nav.js';
import * as passkey from './passkey.js';
import { codeScreen, totpSetupScreen, recoveryCodesScreen, phoneFields, sentLede, passkeyNote, offerPasskey } from './screens.js';

const SEND_METHODS = ['sms', 'voice', 'email'];

// The sign-in in progress: { userId, challengeId, methods }.
let flow = null;

export function showSignIn({ notice, error } = {}) {
  stopAutofill();
  flow = null;
  const refs = ui.render('t-sign-in');
  ui.say(refs.notice, notice);
  if (error) ui.showError(refs.error, error);
  refs.forgot.addEventListener('click', () => {
    stopAutofill();
    go.forgot();
  });
  const password = refs.form.elements.password;
  ui.handleForm(refs.form, refs.error, async (values) => {
    if (passwordless) return; // a passkey from the autofill is signing in already
    await stopAutofill();
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
    if (refs.root.isConnected) startAutofill(refs);
    return false;
  });
  offerPasswordless(refs);
}

// ---- Passwordless: a passkey instead of the user ID and password ------------------------------

// The autofill request in progress: { controller, settled, timer }.
let autofill = null;
// Settles once the last autofill request that was stopped has let go of the browser (a new
// WebAuthn request while one is pending would be refused).
let stopping = Promise.resolve();
// Counts stops, so an autofill that was still starting when it was stopped does not start.
let stops = 0;
// True while a passkey's assertion is being sent (the password form waits for it).
let passwordless = false;

/** Ends the autofill request (if any); resolves once the browser has let go of it. */
function stopAutofill() {
  stops += 1;
  const current = autofill;
  if (current) {
    autofill = null;
    clearTimeout(current.timer);
    current.controller.abort();
    stopping = current.settled;
  }
  return stopping;
}

/**
 * Offers the user's passkeys in the user-ID field's autofill (`autocomplete="username webauthn"`)
 * with a conditional-mediation request, renewed before its options expire. Quiet when the
 * browser cannot, or the options cannot be had: the form works without it.
 */
async function startAutofill(refs) {
  await stopAutofill();
  const mine = stops;
  if (!(await passkey.autofillAvailable()) || !refs.root.isConnected || stops !== mine) return;
  const state = { controller: new AbortController(), settled: null, timer: null };
  const { signal } = state.controller;
  autofill = state;
  state.settled = (async () => {
    let sent = false;
    try {
      const started = await api.passwordlessOptions();
      if (signal.aborted) return;
      const life = Number.isInteger(started.expires_in) ? started.expires_in : 300;
      state.timer = setTimeout(() => {
        if (autofill === state) startAutofill(refs);
      }, Math.max(30, life - 15) * 1000);
      const credential = await passkey.getPasskey(started.options, { conditional: true, signal });
      if (autofill !== state) return;
      autofill = null;
      clearTimeout(state.timer);
      sent = true;
      await signInWithPasskey(started.challenge_id, credential);
    } catch (error) {
      if (signal.aborted || error.code === 'passkey_aborted' || !refs.root.isConnected) return;
      // The options could not be had or the browser refused: quiet, the form still works. A
      // passkey the API refused is said, and not offered again by itself (the button still is).
      if (sent) ui.showError(refs.error, error, 'passkeySignIn');
    }
  })();
}

/** The "Sign in with a passkey" button, its autofill, or the note that passkeys need localhost. */
function offerPasswordless(refs) {
  if (!offerPasskey(refs.passkey, refs.passkeyBlock, refs.passkeyBlock)) return;
  ui.onClick(refs.passkey, refs.error, async () => {
    await stopAutofill();
    try {
      const started = await api.passwordlessOptions();
      const credential = await passkey.getPasskey(started.options);
      await signInWithPasskey(started.challenge_id, credential);
    } catch (error) {
      if (!refs.root.isConnected) return;
      ui.showError(refs.error, error, 'passkeySignIn');
      refs.passkey.focus();
      // Cancelled in the browser: the autofill may still be wanted. Refused by the API: not again.
      if (error instanceof passkey.PasskeyError) startAutofill(refs);
    }
  });
  startAutofill(refs);
}

/** Sends the assertion: signed in (or a new password first); errors are the caller's to show. */
async function signInWithPasskey(challengeId, credential) {
  passwordless = true;
  try {
    const answer = await api.passwordlessSignIn(challengeId, credential);
    flow = { userId: null, challengeId: answer.challenge_id, methods: [] };
    await route(answer);
  } finally {
    passwordless = false;
  }
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

function hasPasskey() {
  return flow.methods.some((m) => m.method === 'passkey');
}

function firstMethod() {
  // A passkey first when the user has one (phishing-resistant); on a page that cannot use
  // passkeys only when nothing else but recovery codes is left.
  const others = flow.methods.filter((m) => !['passkey', 'recovery_code'].includes(m.method));
  if (hasPasskey() && (passkey.availability() === 'ok' || !others.length)) return showPasskey();
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

  const labels = { passkey: 'Use a passkey', totp: 'Use a code from your authenticator app', recovery_code: 'Use a recovery code' };
  const openers = { passkey: () => showPasskey(), totp: (m) => showTotpCode(m), recovery_code: () => showRecoveryCode() };
  const passkeyState = passkey.availability();
  refs.otherList.replaceChildren(...others.filter((m) => labels[m.method]).map((m) => {
    if (m.method === 'passkey' && passkeyState !== 'ok') {
      const note = passkeyNote(passkeyState);
      return note ? ui.el('li', {}, note) : null;
    }
    const button = ui.el('button', { type: 'button', class: 'button button--secondary', text: labels[m.method] });
    button.addEventListener('click', () => openers[m.method](m));
    return ui.el('li', {}, button);
  }).filter(Boolean));
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

/** A passkey as the second factor: new options for this challenge, the browser, then verify. */
function showPasskey() {
  const refs = ui.render('t-passkey');
  const state = passkey.availability();
  const note = passkeyNote(state);
  if (note) refs.note.append(note);
  if (state !== 'ok') {
    refs.form.hidden = true;
    if (state === 'unsupported') ui.showError(refs.error, new passkey.PasskeyError('passkey_unsupported'));
  }
  ui.handleForm(refs.form, refs.error, async (values) => {
    const { options } = await api.passkeyOptions(flow.challengeId);
    const credential = await passkey.getPasskey(options);
    await route(await api.verifyPasskey(flow.challengeId, credential, Boolean(values.trust_device)));
  }, (error) => {
    if (onExpired(error)) return true;
    ui.showError(refs.error, error, 'passkeyVerify');
    refs.submit.focus();
    return true;
  });
  if (flow.methods.some((m) => m.method !== 'passkey')) {
    refs.other.hidden = false;
    refs.other.addEventListener('click', tryAnother);
  }
  refs.cancel.addEventListener('click', () => showSignIn());
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
  enrolPasskeyPanel(refs);
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

/** "Add a passkey" inside the first sign-in: registering it completes the sign-in. */
function enrolPasskeyPanel(refs) {
  if (!offerPasskey(refs.passkey, refs.passkeyNote, refs.passkeyPanel)) return;
  ui.onClick(refs.passkey, refs.error, async () => {
    let pending;
    try {
      pending = await api.enrolPasskey(flow.challengeId);
    } catch (error) {
      if (!onExpired(error)) ui.showError(refs.error, error, 'passkeyRegister');
      return;
    }
    try {
      const credential = await passkey.createPasskey(pending.options);
      await route(await api.verifyEnrolmentPasskey(flow.challengeId, pending.factor_id, credential));
    } catch (error) {
      // Used or expired registration options are challenge_expired too: the sign-in itself may
      // still be open, and a new "Add a passkey" finds out (its own challenge_expired goes back).
      if (refs.root.isConnected) ui.showError(refs.error, error, 'passkeyRegister');
    }
  });
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
  refs.username.value = flow.userId || '';
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

