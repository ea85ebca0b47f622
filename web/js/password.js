// Pages reached without a session: "forgot password", the emailed reset link
// (/reset?token=…) and the invitation link (/welcome?token=…).

import * as api from './api.js';
import * as ui from './ui.js';
import { go } from './nav.js';

/**
 * Reads `?token=` from the address and removes it at once (history.replaceState), so the
 * single-use secret is not left in the address bar, the history, or a bookmark.
 */
export function takeTokenFromAddress() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token');
  if (window.location.search || window.location.hash) {
    window.history.replaceState(null, '', window.location.pathname);
  }
  return token && token.length <= 256 ? token : null;
}

export function showForgot() {
  const refs = ui.render('t-forgot');
  refs.back.addEventListener('click', () => go.signIn());
  ui.handleForm(refs.form, refs.error, async (values) => {
    await api.forgotPassword(values.user_id.trim());
    // Always the same answer, whether or not the user ID exists.
    refs.ask.hidden = true;
    refs.sent.hidden = false;
    refs.sent.focus();
  });
}

function showMessage({ title, text, error, action, onAction }) {
  const refs = ui.render('t-message');
  refs.title.textContent = title;
  refs.text.textContent = text || '';
  if (error) ui.showError(refs.error, error);
  refs.action.textContent = action;
  refs.action.addEventListener('click', onAction);
  return refs;
}

function passwordForm({ title, lede, submit, send, done, context }) {
  const refs = ui.render('t-new-password');
  refs.title.textContent = title;
  refs.lede.textContent = lede;
  refs.submit.textContent = submit;
  refs.username.remove(); // the user ID is not known on these pages
  refs.back.hidden = false;
  refs.back.addEventListener('click', () => go.signIn());
  ui.handleForm(refs.form, refs.error, async (values) => {
    if (values.new_password !== values.confirm_password) {
      ui.say(refs.error, "The two passwords don't match. Please type the same new password twice.");
      return;
    }
    await send(values.new_password);
    done();
  }, (error) => {
    ui.showError(refs.error, error, context);
    return true;
  });
}

/**
 * A page reached by an emailed link: with its token, the form for a new password, which
 * `send(token, password)` saves before the sign-in page opens with `notice` (go.signIn also
 * leaves the link's path); without one, the message that the link does not work, with
 * `broken`'s text and the button that leads on from it.
 */
function linkPasswordPage(token, { broken, send, notice, ...form }) {
  if (!token) {
    showMessage({ title: 'This link does not work', ...broken });
    return;
  }
  passwordForm({ ...form, send: (password) => send(token, password), done: () => go.signIn({ notice }) });
}

export function showReset(token) {
  linkPasswordPage(token, {
    title: 'Choose a new password',
    lede: 'Choose a new password for your user ID. The link works once, within 30 minutes of being sent.',
    submit: 'Save new password',
    context: 'reset',
    send: api.resetPassword,
    notice: 'Your password has been changed, and you were signed out everywhere. Sign in with your new password; you will still need a code.',
    broken: { text: 'The password reset link is incomplete. Ask for a new one.', action: 'Ask for a new link', onAction: () => go.forgot() },
  });
}

export function showWelcome(token) {
  linkPasswordPage(token, {
    title: 'Welcome to Portcullis',
    lede: 'Choose a password to activate your user ID. Next, you will sign in and set up two-step verification.',
    submit: 'Set password',
    send: api.acceptInvitation,
    notice: 'Your password is set. Sign in with your user ID (it is in your invitation email) to set up two-step verification.',
    broken: { text: 'The invitation link is incomplete. Please use the link in your invitation email, or ask us for a new invitation.', action: 'Go to sign in', onAction: () => go.signIn() },
  });
}
