// Step-up: when a change answers 403 step_up_required, ask for a fresh verification in a modal
// dialog (POST /v1/me/step-up → a code, or the browser's passkey prompt → verify), take the
// elevated access token, and retry the change once. The form the user filled in stays where it
// was, under the dialog.

import * as api from './api.js';
import * as session from './session.js';
import * as ui from './ui.js';
import * as passkey from './passkey.js';
import { sentLede, passkeyNote } from './screens.js';

/** Raised when the user closes the step-up dialog: nothing was changed. */
export class StepUpCancelled extends Error {
  constructor() {
    super('step-up cancelled');
    this.name = 'StepUpCancelled';
    this.code = 'step_up_cancelled';
  }
}

/**
 * Runs `action`; on step_up_required, steps up and runs it once more. Calls that ask at the
 * same time (a screen that loads several things) share one dialog and one verification.
 */
export async function withStepUp(action) {
  try {
    return await action();
  } catch (error) {
    if (error.code !== 'step_up_required') throw error;
    if (!(await sharedStepUp())) throw new StepUpCancelled();
    return action();
  }
}

let inFlight = null;

function sharedStepUp() {
  if (!inFlight) inFlight = stepUp().finally(() => { inFlight = null; });
  return inFlight;
}

const $ = (id) => document.getElementById(id);

/** The ways this user can step up, from their active factors (a passkey first: one for all). */
async function stepUpMethods() {
  const factors = (await api.factors()).filter((f) => f.status === 'active');
  const methods = [];
  const note = $('su-passkey-note');
  note.replaceChildren();
  if (factors.some((f) => f.type === 'passkey')) {
    const state = passkey.availability();
    if (state === 'ok') methods.push({ method: 'passkey', label: 'Your passkey (fingerprint, face, screen lock or security key)' });
    else {
      const hint = passkeyNote(state);
      if (hint) note.append(hint);
    }
  }
  for (const f of factors) {
    if (f.type === 'phone') {
      methods.push({ method: 'sms', factor_id: f.factor_id, label: ui.channelLabel('sms', f.phone) });
      methods.push({ method: 'voice', factor_id: f.factor_id, label: ui.channelLabel('voice', f.phone) });
    } else if (f.type === 'totp') {
      methods.push({ method: 'totp', factor_id: f.factor_id, label: 'Code from your authenticator app' });
    } else if (f.type === 'email') {
      methods.push({ method: 'email', factor_id: f.factor_id, label: ui.channelLabel('email', f.email) });
    }
  }
  methods.push({ method: 'recovery_code', label: 'A recovery code' });
  return methods;
}

function showChooser(methods) {
  $('su-choose').hidden = false;
  $('su-code').hidden = true;
  $('su-methods').replaceChildren(...methods.map((m, i) => ui.el('div', { class: 'check' },
    ui.el('input', { type: 'radio', id: `su-method-${i}`, name: 'method', value: String(i), checked: i === 0 }),
    ui.el('label', { for: `su-method-${i}`, text: m.label }))));
}

function showCodeStep(method, started) {
  $('su-choose').hidden = true;
  $('su-code').hidden = false;
  const input = $('su-code-input');
  input.value = '';
  const recovery = method.method === 'recovery_code';
  $('su-code-label').textContent = recovery ? 'Recovery code' : '6-digit code';
  ui.setText($('su-code-hint'), recovery
    ? 'One of the recovery codes you saved. Each works once.'
    : method.method === 'totp'
      ? 'The code your authenticator app shows for Portcullis.'
      : `${sentLede(method.method, started.sent_to)} It expires in 5 minutes.`);
  input.setAttribute('autocomplete', recovery ? 'off' : 'one-time-code');
  if (recovery) input.removeAttribute('inputmode');
  else input.setAttribute('inputmode', 'numeric');
  input.className = recovery ? 'input--recovery' : 'input--code';
  $('su-resend').hidden = !['sms', 'voice', 'email'].includes(method.method);
  input.focus();
}

/** Opens the dialog; resolves true once the session is elevated, false if cancelled. */
export function stepUp() {
  const dialog = $('step-up-dialog');
  const error = $('su-error');
  const status = $('su-status');
  const opener = document.activeElement;
  ui.say(error, '');
  ui.say(status, '');
  $('su-methods').replaceChildren();
  $('su-choose').hidden = false;
  $('su-code').hidden = true;

  return new Promise((resolve) => {
    let methods = [];
    let chosen = null;
    let challengeId = null;
    const controller = new AbortController();
    const { signal } = controller;
    const close = (result) => {
      controller.abort();
      if (dialog.open) dialog.close();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    };

    const chooseForm = $('su-choose');
    const codeForm = $('su-code');
    chooseForm.addEventListener('submit', (event) => {
      event.preventDefault();
      run(chooseForm, async () => {
        chosen = methods[Number(new FormData(chooseForm).get('method'))];
        const started = await api.startStepUp(chosen.method, chosen.factor_id);
        challengeId = started.challenge_id;
        if (chosen.method !== 'passkey') {
          showCodeStep(chosen, started);
          return;
        }
        // No code to type: the browser asks for the passkey, and its answer elevates.
        const credential = await passkey.getPasskey(started.options);
        const elevated = await api.verifyStepUpPasskey(challengeId, credential);
        session.elevate(elevated.access_token);
        close(true);
      });
    }, { signal });
    codeForm.addEventListener('submit', (event) => {
      event.preventDefault();
      run(codeForm, async () => {
        const raw = $('su-code-input').value;
        const elevated = chosen.method === 'recovery_code'
          ? await api.stepUpWithRecoveryCode(challengeId, raw.trim())
          : await api.verifyStepUp(challengeId, chosen.method, ui.digitsOnly(raw), chosen.factor_id);
        session.elevate(elevated.access_token);
        close(true);
      });
    }, { signal });
    $('su-resend').addEventListener('click', () => {
      run(codeForm, async () => {
        const sent = await api.resendStepUpCode(challengeId, chosen.method, chosen.factor_id);
        ui.say(status, `We sent a new code to ${sent.sent_to || 'your device'}.`);
        $('su-code-input').focus();
      });
    }, { signal });
    for (const button of dialog.querySelectorAll('[data-cancel]')) {
      button.addEventListener('click', () => close(false), { signal });
    }
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      close(false);
    }, { signal });

    async function run(form, work) {
      if (form.getAttribute('aria-busy') === 'true') return;
      form.setAttribute('aria-busy', 'true');
      ui.say(error, '');
      ui.say(status, '');
      try {
        await work();
      } catch (err) {
        if (err instanceof api.SessionEnded) return close(false);
        ui.showError(error, err, chosen && chosen.method === 'passkey' ? 'passkeyVerify' : undefined);
        if (err.code === 'challenge_expired') showChooser(methods);
        if (err.code === 'code_invalid') $('su-code-input').select();
      } finally {
        form.removeAttribute('aria-busy');
      }
    }

    dialog.showModal();
    $('su-title').focus();
    run(chooseForm, async () => {
      methods = await stepUpMethods();
      showChooser(methods);
    });
  });
}
