// Portcullis reference web client: entry point. Plain ES modules, no framework, no build step;
// it talks only to the public HTTP API of the same origin (see docs/web-client.md).

import * as api from './js/api.js';
import * as session from './js/session.js';
import { go } from './js/nav.js';
import { showSignIn } from './js/signin.js';
import { showAccount, setChrome, wireNavigation } from './js/account.js';
import { showForgot, showReset, showWelcome, takeTokenFromAddress } from './js/password.js';

go.signIn = (options = {}) => {
  setChrome(false);
  if (window.location.pathname !== '/') window.history.replaceState(null, '', '/');
  showSignIn(options);
};
go.account = (options) => showAccount(options);
go.forgot = () => {
  setChrome(false);
  showForgot();
};

api.onSessionEnded(() => {
  session.end();
  go.signIn({ error: { code: 'unauthorized' } });
});

async function signOut() {
  try {
    await api.signOut();
  } catch {
    // the tokens are dropped below whatever the answer; they expire on their own
  }
  session.end();
  go.signIn({ notice: 'You have signed out.' });
}

function start() {
  document.getElementById('sign-out').addEventListener('click', signOut);
  wireNavigation();
  const path = window.location.pathname.replace(/\/+$/, '');
  if (path === '/reset') {
    showReset(takeTokenFromAddress());
  } else if (path === '/welcome') {
    showWelcome(takeTokenFromAddress());
  } else {
    go.signIn();
  }
}

start();
