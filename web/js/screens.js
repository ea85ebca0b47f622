// Screens used both while signing in and in the signed-in area: entering a code, setting up an
// authenticator app, showing recovery codes once, the phone-number fields, and the note shown
// instead of passkey buttons on a page that cannot use passkeys.

import * as ui from './ui.js';
import { availability, localhostAddress } from './passkey.js';

const SEND_LEDE = {
  sms: (to) => `We sent a text message with a 6-digit code to ${to}.`,
  voice: (to) => `We are calling ${to} to read you a 6-digit code.`,
  email: (to) => `We sent an email with a 6-digit code to ${to}.`,
};

/** The sentence that says where a code went. */
export function sentLede(method, sentTo) {
  const build = SEND_LEDE[method];
  return build ? build(sentTo || 'your device') : 'We sent you a 6-digit code.';
}

function sendsLeft(answer) {
  if (!answer || !Number.isInteger(answer.sends_remaining)) return '';
  if (answer.sends_remaining === 0) return 'That was the last new code we can send for this attempt.';
  return answer.sends_remaining === 1
    ? 'You can ask for 1 more new code.'
    : `You can ask for ${answer.sends_remaining} more new codes.`;
}

function expiryHint(answer) {
  const secs = answer && Number.isInteger(answer.expires_in) ? answer.expires_in : 300;
  const mins = Math.max(1, Math.round(secs / 60));
  return `The code expires in ${mins} minute${mins === 1 ? '' : 's'}.`;
}

function useRecoveryInput(refs) {
  const input = refs.form.elements.code;
  input.removeAttribute('pattern');
  input.removeAttribute('inputmode');
  input.setAttribute('autocomplete', 'off');
  input.setAttribute('autocapitalize', 'characters');
  input.setAttribute('maxlength', '64');
  input.className = 'input--recovery';
  refs.label.textContent = 'Recovery code';
  refs.hint.textContent = '16 letters and digits, like ABCD-EFGH-JKMN-PQRS. Each recovery code works once.';
}

/**
 * Asks for a code.
 * options: title, lede, sent (answer of the send: sent_to, sends_remaining, expires_in),
 * recovery (a recovery code instead of 6 digits), trust (offer "Trust this device"),
 * onSubmit({ code, trust }), onResend() → answer, onOther(), onBack() + backLabel, onExpired(err).
 */
export function codeScreen(options) {
  const refs = ui.render('t-code');
  refs.title.textContent = options.title || 'Enter your code';
  ui.setText(refs.lede, options.lede);
  if (options.recovery) useRecoveryInput(refs);
  else ui.setText(refs.hint, `${expiryHint(options.sent)} ${sendsLeft(options.sent)}`.trim());
  if (options.totp) refs.hint.textContent = 'Open your authenticator app and enter the 6-digit code it shows for Portcullis.';
  if (options.submitLabel) refs.submit.textContent = options.submitLabel;
  refs.trust.hidden = !options.trust;
  const input = refs.form.elements.code;

  ui.handleForm(refs.form, refs.error, async (values) => {
    const code = options.recovery ? values.code.trim() : ui.digitsOnly(values.code);
    await options.onSubmit({ code, trust: Boolean(values.trust_device) });
  }, (error) => {
    if (error.code === 'challenge_expired' && options.onExpired) {
      options.onExpired(error);
      return true;
    }
    if (error.code === 'code_invalid' || error.code === 'validation_failed') {
      input.value = '';
      input.focus();
    }
    return false;
  });

  if (options.onResend) {
    refs.resend.hidden = false;
    ui.onClick(refs.resend, refs.error, async () => {
      ui.say(refs.notice, '');
      try {
        const answer = await options.onResend();
        ui.say(refs.notice, `We sent a new code to ${answer.sent_to || 'your device'}. ${sendsLeft(answer)}`.trim());
        refs.hint.textContent = expiryHint(answer);
        input.value = '';
        input.focus();
      } catch (error) {
        if (error.code === 'challenge_expired' && options.onExpired) options.onExpired(error);
        else throw error;
      }
    });
  }
  if (options.onOther) {
    refs.other.hidden = false;
    refs.other.addEventListener('click', () => options.onOther());
  }
  if (options.onBack) {
    refs.back.hidden = false;
    refs.back.textContent = options.backLabel || 'Back';
    refs.back.addEventListener('click', () => options.onBack());
  }
  return refs;
}

/**
 * Authenticator set-up: the QR code (PNG from the API as a data: URI), the secret grouped for
 * typing, and the first code. options: data (the API's answer), onSubmit(code), onBack(),
 * onExpired(err).
 */
export function totpSetupScreen({ data, onSubmit, onBack, onExpired }) {
  const refs = ui.render('t-totp');
  refs.qr.src = `data:image/png;base64,${data.qr_png_base64}`;
  refs.secret.textContent = ui.groupSecret(data.secret);
  refs.copy.addEventListener('click', () => ui.copyText(data.secret, refs.copied));
  const input = refs.form.elements.code;
  ui.handleForm(refs.form, refs.error, async (values) => {
    await onSubmit(ui.digitsOnly(values.code));
  }, (error) => {
    if (error.code === 'challenge_expired' && onExpired) {
      onExpired(error);
      return true;
    }
    if (error.code === 'code_invalid') {
      input.value = '';
      input.focus();
    }
    return false;
  });
  if (onBack) refs.back.addEventListener('click', () => onBack());
  else refs.back.hidden = true;
  return refs;
}

/** Shows recovery codes once, with Copy and Print; Continue after "I have saved them". */
export function recoveryCodesScreen(codes, onDone) {
  const refs = ui.render('t-recovery-codes');
  refs.codes.replaceChildren(...codes.map((code) => ui.el('li', {}, ui.el('code', { text: code }))));
  refs.copy.addEventListener('click', () => ui.copyText(codes.join('\n'), refs.copied));
  refs.print.addEventListener('click', () => window.print());
  const saved = refs.form.elements.saved;
  saved.addEventListener('change', () => { refs.done.disabled = !saved.checked; });
  ui.handleForm(refs.form, refs.error, async () => {
    if (!saved.checked) return;
    refs.codes.replaceChildren(); // gone from the page once confirmed
    await onDone();
  });
  return refs;
}

/** Puts the phone-number fields into `container`; `voice` false hides the delivery choice. */
export function phoneFields(container, { delivery = true } = {}) {
  ui.insertPart(container, 't-phone-fields');
  if (!delivery) container.querySelector('[data-ref="deliveryFieldset"]').hidden = true;
}

/**
 * Where a passkey button would be but passkeys cannot work on this page: the hint to open it at
 * localhost (IP-address origins), or nothing (a browser without WebAuthn). Returns the element
 * or null; the caller hides its passkey buttons whenever availability() is not 'ok'.
 */
export function passkeyNote(state) {
  if (state !== 'ip') return null;
  const address = localhostAddress();
  return ui.el('p', { class: 'hint passkey-note' }, 'Passkeys need the page opened at ', ui.el('a', { href: address, text: address }));
}

/**
 * A page's passkey button, as far as passkeys can work on this page: `button` shown only where
 * they do, `block` (if given) hidden where the browser has none, and the note (passkeyNote)
 * added to `noteIn`. Returns whether passkeys work here.
 */
export function offerPasskey(button, noteIn, block) {
  const state = availability();
  if (block) block.hidden = state === 'unsupported';
  button.hidden = state !== 'ok';
  const note = passkeyNote(state);
  if (note) noteIn.append(note);
  return state === 'ok';
}
