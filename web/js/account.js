// The signed-in area: sign-in methods and recovery codes, trusted devices, security activity,
// password change. Sensitive changes go through withStepUp (a fresh code when the API asks).

import * as api from './api.js';
import * as session from './session.js';
import * as ui from './ui.js';
import * as passkey from './passkey.js';
import { codeScreen, totpSetupScreen, recoveryCodesScreen, phoneFields, sentLede, offerPasskey } from './screens.js';
import { withStepUp } from './stepup.js';
import { eventLabel, eventDetail } from './messages.js';
import { showConsole } from './console.js';

const SECTIONS = { security: showSecurity, devices: showDevices, activity: showActivity, password: showPassword, console: showConsole };

/** Shows the signed-in chrome (user, sign-out, navigation) and one section. */
export function showAccount({ section = 'security', notice = null } = {}) {
  setChrome(true);
  for (const button of document.querySelectorAll('[data-nav]')) {
    if (button.dataset.nav === section) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  return (SECTIONS[section] || showSecurity)({ notice });
}

/** The header's session bar and navigation, shown only while signed in. */
export function setChrome(signedIn) {
  document.getElementById('session-bar').hidden = !signedIn;
  document.getElementById('account-nav').hidden = !signedIn;
  document.getElementById('session-user').textContent = signedIn ? session.userId() : '';
  // For the eye only: the API refuses every console call to anyone who is not an admin.
  document.getElementById('console-nav').hidden = !(signedIn && session.hasRole('admin'));
}

export function wireNavigation() {
  for (const button of document.querySelectorAll('[data-nav]')) {
    button.addEventListener('click', () => showAccount({ section: button.dataset.nav }));
  }
}

function backToSecurity(notice) {
  return showAccount({ section: 'security', notice });
}

// ---- Security: methods and recovery codes -----------------------------------------------------

const DELIVERY = { sms: 'codes by text message', voice: 'codes by voice call' };

function factorTitle(f) {
  if (f.type === 'phone') return `Mobile phone ${f.phone || ''}`.trim();
  if (f.type === 'totp') return 'Authenticator app';
  if (f.type === 'email') return `Email ${f.email || ''}`.trim();
  if (f.type === 'passkey') return passkeyTitle(f.name);
  return f.type;
}

/** "Passkey: Work laptop" (the name as the user typed it, shown as text only), or "Passkey". */
function passkeyTitle(name) {
  const text = String(name || '').trim();
  return !text || text.toLowerCase() === 'passkey' ? 'Passkey' : `Passkey: ${text}`;
}

/** Where a passkey lives (the WebAuthn backup flags): synced, syncable, or this device only. */
function backupLabel(f) {
  if (f.backup_state) return 'Synced';
  if (f.backup_eligible) return 'Can be synced, not backed up yet';
  return 'On one device only';
}

function factorMeta(f) {
  const added = `added ${ui.formatDate(f.created_at)}`;
  if (f.type === 'passkey') {
    const used = Number.isFinite(f.last_used_at) ? `last used ${ui.formatDateTime(f.last_used_at)}` : 'not used yet';
    return `Added ${ui.formatDate(f.created_at)} · ${used}`;
  }
  const meta = [f.type === 'phone' ? DELIVERY[f.delivery] : null, added].filter(Boolean).join(' · ');
  return meta.charAt(0).toUpperCase() + meta.slice(1);
}

function actionButton(text, context, handler, extraClass = '') {
  const button = ui.el('button', { type: 'button', class: `button button--secondary button--small ${extraClass}`.trim() },
    text, ui.el('span', { class: 'visually-hidden', text: ` ${context}` }));
  button.addEventListener('click', handler);
  return button;
}

async function showSecurity({ notice } = {}) {
  const refs = ui.render('t-security');
  ui.say(refs.notice, notice);
  refs.addPhone.addEventListener('click', () => showPhoneForm());
  ui.onClick(refs.addTotp, refs.error, addAuthenticator);
  refs.addEmail.addEventListener('click', () => showEmailForm());
  offerPasskey(refs.addPasskey, refs.passkeyNote);
  refs.addPasskey.addEventListener('click', () => showPasskeyForm());
  ui.onClick(refs.regenerate, refs.error, regenerateCodes);
  const [factors, remaining] = await Promise.allSettled([api.factors(), api.recoveryCodesRemaining()]);
  if (factors.status === 'fulfilled') renderFactors(refs, factors.value);
  else ui.showError(refs.error, factors.reason);
  if (remaining.status === 'fulfilled') {
    const n = remaining.value;
    refs.remaining.textContent = n === 0
      ? 'You have no unused recovery codes. Get a set, so you can still sign in if you lose your phone or app.'
      : `You have ${n} unused recovery code${n === 1 ? '' : 's'}. Each one lets you sign in once if you lose your phone or app.`;
  } else {
    refs.remaining.textContent = '';
    ui.showError(refs.error, remaining.reason);
  }
}

function renderFactors(refs, factors) {
  const active = factors.filter((f) => f.status === 'active');
  refs.factors.replaceChildren(...factors.map((f) => {
    const actions = ui.el('div', { class: 'item__actions' });
    const name = factorTitle(f);
    if (f.type === 'phone' && f.status === 'active') {
      actions.append(actionButton('Change number', name, () => showPhoneForm(f)));
    }
    if (f.type === 'passkey' && f.status === 'active') {
      actions.append(actionButton('Rename', name, () => showRenamePasskey(f)));
    }
    const last = f.status === 'active' && active.length === 1;
    actions.append(actionButton('Remove', name, () => removeFactor(refs, f, last), 'button--danger-outline'));
    return ui.el('li', { class: 'item' },
      ui.el('div', { class: 'item__main' },
        ui.el('strong', { text: name }),
        f.status === 'pending' ? ui.el('span', { class: 'badge badge--warn', text: 'Not confirmed' }) : null,
        f.type === 'passkey' && f.status === 'active' ? ui.el('span', { class: 'badge', text: backupLabel(f) }) : null,
        ui.el('span', { class: 'item__meta', text: factorMeta(f) })),
      actions);
  }));
  if (!factors.length) refs.factors.append(ui.el('li', { class: 'item item--empty', text: 'You have no sign-in methods. The next time you sign in, you will be asked to set one up.' }));
  refs.addTotp.hidden = factors.some((f) => f.type === 'totp' && f.status === 'active');
}

async function removeFactor(refs, factor, last) {
  const ok = await ui.confirmAction({
    title: `Remove ${factorTitle(factor)}?`,
    text: last
      ? 'This is your only sign-in method. If you remove it, you will have to set up a new one the next time you sign in.'
      : factor.type === 'passkey'
        ? 'You will no longer be able to use it to sign in or to confirm it is you. Your device or password manager keeps it until you delete it there too.'
        : 'You will no longer be able to use it to confirm it is you.',
  });
  if (!ok) return;
  try {
    await withStepUp(() => api.removeFactor(factor.factor_id));
    await backToSecurity(`${factorTitle(factor)} was removed.`);
  } catch (error) {
    ui.showError(refs.error, error);
  }
}

/** Adds a phone (no factor given) or changes the number of `factor`. */
function showPhoneForm(factor = null) {
  const refs = ui.render('t-add-phone');
  const changing = Boolean(factor);
  if (changing) {
    refs.title.textContent = 'Change your phone number';
    refs.lede.textContent = `We'll send a code to the new number. ${factor.phone} keeps working until the new number is confirmed.`;
  } else {
    refs.lede.textContent = 'We will send a code to the new number to check it is yours.';
  }
  phoneFields(refs.phoneFields, { delivery: !changing });
  refs.back.addEventListener('click', () => backToSecurity());
  ui.handleForm(refs.form, refs.error, async (values) => {
    const phone = ui.compactPhone(values.phone);
    const delivery = changing ? factor.delivery : values.delivery;
    const pending = await withStepUp(() => (changing ? api.changePhone(factor.factor_id, phone) : api.addPhone(phone, delivery)));
    codeScreen({
      title: changing ? 'Confirm your new number' : 'Confirm your phone',
      lede: sentLede(delivery, pending.sent_to),
      sent: pending,
      submitLabel: 'Confirm',
      onSubmit: async ({ code }) => {
        await api.activateFactor(pending.factor_id, code);
        await backToSecurity(changing ? 'Your phone number has been changed.' : 'Your phone has been added.');
      },
      onBack: () => backToSecurity(),
      backLabel: 'Cancel',
    });
  });
}

function showEmailForm() {
  const refs = ui.render('t-add-email');
  refs.back.addEventListener('click', () => backToSecurity());
  ui.handleForm(refs.form, refs.error, async (values) => {
    const pending = await withStepUp(() => api.addEmail(values.email.trim()));
    codeScreen({
      title: 'Confirm your email address',
      lede: sentLede('email', pending.sent_to),
      sent: pending,
      submitLabel: 'Confirm',
      onSubmit: async ({ code }) => {
        await api.activateFactor(pending.factor_id, code);
        await backToSecurity('Your email address has been added.');
      },
      onBack: () => backToSecurity(),
      backLabel: 'Cancel',
    });
  });
}

async function addAuthenticator() {
  const data = await withStepUp(() => api.addTotp());
  totpSetupScreen({
    data,
    onSubmit: async (code) => {
      const activated = await api.activateFactor(data.factor_id, code);
      const done = () => backToSecurity('Your authenticator app is set up.');
      if (Array.isArray(activated.recovery_codes) && activated.recovery_codes.length) {
        recoveryCodesScreen(activated.recovery_codes, done);
      } else {
        await done();
      }
    },
    onBack: () => backToSecurity(),
  });
}

// ---- Passkeys -------------------------------------------------------------------------------------

/** Adds a passkey: a name, a step-up if the API asks, the browser's registration, recovery codes. */
function showPasskeyForm() {
  const refs = ui.render('t-add-passkey');
  refs.username.value = session.userId() || '';
  refs.back.addEventListener('click', () => backToSecurity());
  ui.handleForm(refs.form, refs.error, async (values) => {
    const name = values.name.trim();
    const pending = await withStepUp(() => api.addPasskey(name, values.current_password));
    const credential = await passkey.createPasskey(pending.options);
    const activated = await api.activatePasskey(pending.factor_id, credential);
    const label = activated.name || name;
    const done = () => backToSecurity(passkeyTitle(label) === 'Passkey'
      ? 'Your passkey is set up. You can use it to sign in.'
      : `Your passkey "${label}" is set up. You can use it to sign in.`);
    if (Array.isArray(activated.recovery_codes) && activated.recovery_codes.length) {
      recoveryCodesScreen(activated.recovery_codes, done);
    } else {
      await done();
    }
  }, (error) => {
    ui.showError(refs.error, error, 'passkeyRegister');
    return true;
  });
}

function showRenamePasskey(factor) {
  const refs = ui.render('t-rename-passkey');
  const input = refs.form.elements.name;
  input.value = factor.name || '';
  refs.back.addEventListener('click', () => backToSecurity());
  ui.handleForm(refs.form, refs.error, async (values) => {
    const name = values.name.trim();
    if (!name) {
      ui.showError(refs.error, { code: 'validation_failed' }, 'passkeyRename');
      input.focus();
      return;
    }
    await withStepUp(() => api.renameFactor(factor.factor_id, name));
    await backToSecurity(`Your passkey is now called "${name}".`);
  }, (error) => {
    ui.showError(refs.error, error, 'passkeyRename');
    return true;
  });
}

async function regenerateCodes() {
  const ok = await ui.confirmAction({
    title: 'Get new recovery codes?',
    text: 'Your current recovery codes will stop working as soon as the new ones are made.',
    confirmLabel: 'Get new codes',
  });
  if (!ok) return;
  const codes = await withStepUp(() => api.regenerateRecoveryCodes());
  recoveryCodesScreen(codes, () => backToSecurity('Your new recovery codes are ready. The old ones no longer work.'));
}

// ---- Trusted devices ----------------------------------------------------------------------------

/**
 * The list `load` answers, for a page with an `empty` note (shown when there is nothing): the
 * trusted devices, the activity. Null once the page says why the list could not be had.
 */
async function loadList(refs, load) {
  try {
    const list = await load();
    refs.empty.hidden = list.length > 0;
    return list;
  } catch (error) {
    ui.showError(refs.error, error);
    return null;
  }
}

async function showDevices({ notice } = {}) {
  const refs = ui.render('t-devices');
  ui.say(refs.notice, notice);
  const list = await loadList(refs, api.devices);
  if (!list) return;
  refs.removeAll.hidden = list.length === 0;
  refs.list.replaceChildren(...list.map((d) => {
    const meta = `Trusted ${ui.formatDate(d.created_at)} · last used ${ui.formatDateTime(d.last_used_at)} · until ${ui.formatDate(d.expires_at)}`;
    return ui.el('li', { class: 'item', dataset: { deviceId: d.device_id } },
      ui.el('div', { class: 'item__main' },
        ui.el('strong', { text: d.name || 'Unnamed device' }),
        d.current ? ui.el('span', { class: 'badge', text: 'This browser' }) : null,
        ui.el('span', { class: 'item__meta', text: meta })),
      ui.el('div', { class: 'item__actions' },
        actionButton('Remove', d.name || 'device', () => removeDevice(refs, d, d.current), 'button--danger-outline')));
  }));
  ui.onClick(refs.removeAll, refs.error, async () => {
    const ok = await ui.confirmAction({
      title: 'Remove all trusted devices?',
      text: 'You will be asked for a code the next time you sign in on any of them, including this browser.',
      confirmLabel: 'Remove all',
    });
    if (!ok) return;
    const { removed } = await api.removeAllDevices();
    session.forgetDevice(session.userId());
    await showAccount({ section: 'devices', notice: `${removed} trusted device${removed === 1 ? ' was' : 's were'} removed.` });
  });
}

async function removeDevice(refs, device, isThis) {
  const ok = await ui.confirmAction({
    title: `Remove ${device.name || 'this device'}?`,
    text: 'You will be asked for a code the next time you sign in on it.',
  });
  if (!ok) return;
  try {
    await api.removeDevice(device.device_id);
    if (isThis) session.forgetDevice(session.userId());
    await showAccount({ section: 'devices', notice: `${device.name || 'The device'} is no longer trusted.` });
  } catch (error) {
    ui.showError(refs.error, error);
  }
}

// ---- Activity -----------------------------------------------------------------------------------

async function showActivity() {
  const refs = ui.render('t-activity');
  const events = await loadList(refs, api.events);
  if (!events) return;
  refs.rows.replaceChildren(...events.map((e) => {
    const details = [eventDetail(e.detail), e.outcome && e.outcome !== 'success' ? `(${e.outcome})` : null].filter(Boolean).join(' ');
    return ui.el('tr', {},
      ui.el('td', { text: ui.formatDateTime(e.at) }),
      ui.el('td', { text: eventLabel(e.kind) }),
      ui.el('td', { text: details || '—' }),
      ui.el('td', { text: e.source_ip || '—' }));
  }));
}

// ---- Password -----------------------------------------------------------------------------------

function showPassword() {
  const refs = ui.render('t-new-password');
  refs.title.textContent = 'Change password';
  refs.lede.textContent = 'You will stay signed in here. Your other sessions and all your trusted devices will be signed out.';
  refs.current.hidden = false;
  refs.form.elements.current_password.required = true;
  refs.username.value = session.userId();
  refs.submit.textContent = 'Change password';
  ui.handleForm(refs.form, refs.error, async (values) => {
    if (values.new_password !== values.confirm_password) {
      ui.say(refs.error, "The two new passwords don't match. Please type the same new password twice.");
      return;
    }
    await withStepUp(() => api.changePassword(values.current_password, values.new_password));
    session.forgetDevice(session.userId()); // a password change removes every trusted device
    await backToSecurity('Your password has been changed. Your other sessions and trusted devices were signed out.');
  }, (error) => {
    ui.showError(refs.error, error, 'changePassword');
    return true;
  });
}
