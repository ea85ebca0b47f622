// DOM helpers: screens from <template>s, messages, forms that show their own errors, a
// confirmation dialog, and small formatters. No inline styles or handlers anywhere (CSP).

import { messageFor, fieldProblems } from './messages.js';
import { SessionEnded } from './api.js';

const main = () => document.getElementById('main');

/** Replaces the main content with a clone of template `id`; moves focus to its heading. */
export function render(id) {
  const template = document.getElementById(id);
  const fragment = template.content.cloneNode(true);
  const refs = {};
  for (const node of fragment.querySelectorAll('[data-ref]')) refs[node.dataset.ref] = node;
  main().replaceChildren(fragment);
  refs.root = main().firstElementChild;
  focusHeading(refs.root);
  window.scrollTo(0, 0);
  return refs;
}

/** Fills a container with a clone of template `id` (a part shared by several screens). */
export function insertPart(container, id) {
  const fragment = document.getElementById(id).content.cloneNode(true);
  container.replaceChildren(fragment);
}

export function focusHeading(root) {
  const heading = root && root.querySelector('h1, h2');
  if (heading) heading.focus();
}

/** Creates an element: el('li', { class: 'x', text: 'y' }, child, …). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name === 'class') node.className = value;
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** Text as nodes, with masked numbers ("***-***-1234") kept on one line. */
export function textNodes(text) {
  return String(text || '').split(/(\*{3}-\*{3}-\d{4})/).filter(Boolean)
    .map((part) => (/^\*{3}-/.test(part) ? el('span', { class: 'nowrap', text: part }) : part));
}

/** Sets the text of an element (masked numbers kept whole). */
export function setText(target, text) {
  if (target) target.replaceChildren(...textNodes(text));
}

/** Shows text in a message element (role=alert / role=status). Empty text hides it. */
export function say(target, text) {
  setText(target, text);
}

/** Shows an API (or other) error in the screen's alert, with any field problems listed. */
export function showError(target, error, context) {
  if (error instanceof SessionEnded) return; // the sign-in screen already says so
  if (!target) return;
  target.replaceChildren(messageFor(error, context));
  const problems = fieldProblems(error);
  if (problems.length) target.append(el('ul', {}, ...problems.map((p) => el('li', { text: p }))));
}

function formValues(form) {
  const values = {};
  for (const field of form.elements) {
    if (!field.name) continue;
    if (field.type === 'checkbox') values[field.name] = field.checked;
    else if (field.type === 'radio') {
      if (field.checked) values[field.name] = field.value;
    } else values[field.name] = field.value;
  }
  return values;
}

/**
 * Handles a form's submission: one request at a time, buttons disabled meanwhile, errors shown
 * in `errorTarget` (unless `onError` handles them and returns true).
 */
export function handleForm(form, errorTarget, handler, onError) {
  let busy = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    say(errorTarget, '');
    const buttons = [...form.querySelectorAll('button')];
    const wasDisabled = buttons.map((b) => b.disabled);
    buttons.forEach((b) => { b.disabled = true; });
    form.setAttribute('aria-busy', 'true');
    try {
      await handler(formValues(form));
    } catch (error) {
      if (!(onError && onError(error))) showError(errorTarget, error);
    } finally {
      busy = false;
      form.removeAttribute('aria-busy');
      buttons.forEach((b, i) => { b.disabled = wasDisabled[i]; });
    }
  });
}

/** A button that runs an async action once at a time, showing errors in `errorTarget`. */
export function onClick(button, errorTarget, action) {
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    say(errorTarget, '');
    try {
      await action();
    } catch (error) {
      showError(errorTarget, error);
    } finally {
      button.disabled = false;
    }
  });
}

/** Asks for confirmation in a modal dialog; resolves true when confirmed. */
export function confirmAction({ title, text, confirmLabel = 'Remove' }) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-yes').textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === 'yes');
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    document.getElementById('confirm-title').focus();
  });
}

/** Copies text to the clipboard and says so in `status`. */
export async function copyText(text, status) {
  try {
    await navigator.clipboard.writeText(text);
    say(status, 'Copied.');
  } catch {
    say(status, 'Copying is not available here: select the text and copy it yourself.');
  }
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function formatDateTime(unixSeconds) {
  return Number.isFinite(unixSeconds) ? dateFormat.format(new Date(unixSeconds * 1000)) : '';
}

export function formatDate(unixSeconds) {
  return Number.isFinite(unixSeconds) ? dayFormat.format(new Date(unixSeconds * 1000)) : '';
}

/** "JBSWY3DPEHPK3PXP" → "JBSW Y3DP EHPK 3PXP" (easier to type into an app). */
export function groupSecret(secret) {
  return String(secret).replace(/(.{4})(?=.)/g, '$1 ');
}

/** Keeps the digits of a typed code ("123 456" → "123456"). */
export function digitsOnly(code) {
  return String(code || '').replace(/\D/g, '');
}

/** Removes what people type to make a number readable ("+1 (202) 555-0143" → "+12025550143"). */
export function compactPhone(phone) {
  return String(phone || '').replace(/[\s().-]/g, '');
}

/** "sms" → "Text message", for the masked destinations the API returns. */
export function channelLabel(method, destination) {
  const to = destination ? ` to ${destination}` : '';
  switch (method) {
    case 'sms': return `Text message${to}`;
    case 'voice': return `Voice call${to}`;
    case 'email': return `Email${to}`;
    case 'totp': return 'Authenticator app';
    case 'recovery_code': return 'Recovery code';
    default: return method;
  }
}
