// The admin and support console: find a user, their detail (status, both locks, masked
// methods, devices, deliveries, events), invitations, unlock / deactivate / reactivate / a
// required password change, roles, MFA-reset requests, and the queue of two-admin requests.
//
// Shown only when the access token carries the admin role (session.hasRole, for the eye only):
// the API checks the role on the current user record, a fresh verification and that the
// subject is someone else on every call. Every call goes through withStepUp, so an answer
// `403 step_up_required` opens the same dialog as the user area and the call is sent again.

import * as api from './api.js';
import * as session from './session.js';
import * as ui from './ui.js';
import { withStepUp } from './stepup.js';
import { eventLabel, eventDetail, deliveryPurpose, REQUEST_KINDS } from './messages.js';

const VIEWS = { users: showUsers, invite: showInvite, requests: showRequests };

/** The console's entry: one of its views (users, invite, requests). */
export function showConsole({ view = 'users', notice = null } = {}) {
  return (VIEWS[view] || showUsers)({ notice });
}

/** Renders a console template with the console's own navigation, `current` marked. */
function consoleScreen(templateId, current) {
  const refs = ui.render(templateId);
  ui.insertPart(refs.nav, 't-console-nav');
  for (const button of refs.nav.querySelectorAll('[data-console]')) {
    if (button.dataset.console === current) button.setAttribute('aria-current', 'page');
    button.addEventListener('click', () => showConsole({ view: button.dataset.console }));
  }
  return refs;
}

/** Shows errors with the console's wording (handleForm's onError). */
function consoleError(target, context = 'console') {
  return (error) => {
    ui.showError(target, error, context);
    return true;
  };
}

/** Runs an admin call, stepping up when the API asks for it. */
const admin = (call) => withStepUp(call);

const me = () => session.subject();

const STATUS = { active: 'Active', inactive: 'Deactivated' };
const CHANNELS = { sms: 'Text message', voice: 'Voice call', email: 'Email' };
/** The roles an admin may grant (shared/src/service/admin.rs ROLES), in words. */
const ROLE_NAMES = { support: 'Support', admin: 'Administrator' };
const FACTOR_KINDS = { phone: 'Phone', totp: 'Authenticator app', email: 'Email', passkey: 'Passkey' };

function badge(text, warn = false) {
  return ui.el('span', { class: warn ? 'badge badge--warn' : 'badge', text });
}

// ---- Find a user --------------------------------------------------------------------------------

// The last search, for "Back to the search"; kept for the admin who made it only (another
// admin signing in on this page starts with an empty search).
let last = { who: null, query: '' };

async function showUsers({ notice } = {}) {
  const refs = consoleScreen('t-console-users', 'users');
  ui.say(refs.notice, notice);
  const input = refs.form.elements.query;
  const lastQuery = last.who === me() ? last.query : '';
  input.value = lastQuery;
  const search = async (query) => {
    last = { who: me(), query };
    ui.say(refs.count, 'Searching…');
    try {
      renderUsers(refs, await admin(() => api.adminSearch(query)), query);
    } catch (error) {
      ui.say(refs.count, '');
      throw error;
    }
  };
  ui.handleForm(refs.form, refs.error, (values) => search(values.query.trim()), consoleError(refs.error));
  if (lastQuery) {
    try {
      await search(lastQuery);
    } catch (error) {
      ui.showError(refs.error, error, 'console');
    }
  }
}

function renderUsers(refs, users, query) {
  refs.results.hidden = users.length === 0;
  ui.say(refs.count, users.length === 0
    ? `No user ID or email address starts with “${query}”.`
    : users.length >= 50
      ? 'The first 50 users found. Type more of the user ID or email address to narrow the search.'
      : `${users.length} user${users.length === 1 ? '' : 's'} found.`);
  refs.rows.replaceChildren(...users.map((u) => {
    const open = ui.el('button', { type: 'button', class: 'link', text: u.user_id });
    open.addEventListener('click', () => showUser(u.user_id));
    const status = ui.el('td', {}, STATUS[u.status] || u.status);
    if (u.locked) status.append(' ', badge('Locked', true));
    for (const role of u.roles || []) status.append(' ', badge(role));
    return ui.el('tr', {},
      ui.el('th', { scope: 'row' }, open),
      ui.el('td', { text: u.email || '—' }),
      status,
      ui.el('td', { text: (u.factors || []).map((f) => FACTOR_KINDS[f] || f).join(', ') || 'None yet' }),
      ui.el('td', { text: u.last_sign_in_at ? ui.formatDateTime(u.last_sign_in_at) : 'Never' }));
  }));
}

// ---- Invite a user ------------------------------------------------------------------------------

function showInvite({ notice } = {}) {
  const refs = consoleScreen('t-console-invite', 'invite');
  ui.say(refs.notice, notice);
  ui.handleForm(refs.form, refs.error, async (values) => {
    const invitation = { user_id: values.user_id.trim(), email: values.email.trim() };
    const phone = ui.compactPhone(values.phone);
    if (phone) invitation.phone = phone;
    const roles = [values.role_admin ? 'admin' : null, values.role_support ? 'support' : null].filter(Boolean);
    if (roles.length) invitation.roles = roles;
    ui.say(refs.notice, '');
    const { status, data } = await admin(() => api.adminInvite(invitation));
    if (status === 202) {
      ui.say(refs.notice, `Waiting for a second admin: ${invitation.user_id} is invited as an administrator only once another administrator approves it in Approvals, before ${ui.formatDateTime(data.expires_at)}. Nothing was created or sent yet.`);
    } else {
      ui.say(refs.notice, `Invitation sent to ${data.invitation.sent_to} for ${data.user_id}. The link works once, until ${ui.formatDateTime(data.invitation.expires_at)}.`);
      const openUser = ui.el('button', { type: 'button', class: 'link', text: `Open ${data.user_id}` });
      openUser.addEventListener('click', () => showUser(data.user_id));
      refs.notice.append(' ', openUser);
    }
    refs.form.reset();
    refs.form.elements.user_id.focus();
  }, consoleError(refs.error));
}

// ---- Approvals ----------------------------------------------------------------------------------

let showApproved = false;

async function showRequests({ notice } = {}) {
  const refs = consoleScreen('t-console-requests', 'requests');
  ui.say(refs.notice, notice);
  refs.all.checked = showApproved;
  refs.all.addEventListener('change', () => {
    showApproved = refs.all.checked;
    loadRequests(refs);
  });
  await loadRequests(refs);
}

async function loadRequests(refs) {
  ui.say(refs.error, '');
  let requests;
  try {
    requests = await admin(() => api.adminRequests(showApproved ? 'all' : 'pending'));
  } catch (error) {
    ui.showError(refs.error, error, 'console');
    return;
  }
  refs.empty.hidden = requests.length > 0;
  refs.empty.textContent = showApproved ? 'No requests that have not expired.' : 'No requests are waiting.';
  refs.list.replaceChildren(...requests.map((r) => requestItem(refs, r)));
}

function requestTitle(r) {
  return `${REQUEST_KINDS[r.kind] || r.kind}: ${r.user_id}`;
}

function requestItem(refs, r) {
  const meta = [`Requested by ${r.requested_by === me() ? 'you' : r.requested_by}, ${ui.formatDateTime(r.created_at)}`];
  if (r.status === 'pending') meta.push(`expires ${ui.formatDateTime(r.expires_at)}`);
  if (r.roles && r.roles.length) meta.push(`roles: ${r.roles.join(', ')}`);
  if (r.email) meta.push(`invitation to ${r.email}`);
  const main = ui.el('div', { class: 'item__main' },
    ui.el('strong', { text: requestTitle(r) }),
    ui.el('span', { class: 'item__meta', text: meta.join(' · ') }),
    r.reason ? ui.el('span', { class: 'item__reason', text: `Reason: ${r.reason}` }) : null);
  const actions = ui.el('div', { class: 'item__actions' });
  if (r.status === 'approved') {
    actions.append(badge(`Approved by ${r.approved_by === me() ? 'you' : r.approved_by}${r.approved_at ? `, ${ui.formatDateTime(r.approved_at)}` : ''}`));
  } else if (r.can_approve) {
    const approve = ui.el('button', { type: 'button', class: 'button button--small' },
      'Approve', ui.el('span', { class: 'visually-hidden', text: ` ${requestTitle(r)}` }));
    approve.addEventListener('click', () => approveRequest(refs, r, approve));
    actions.append(approve);
  } else if (r.requested_by === me()) {
    actions.append(badge('Waiting for a second admin', true));
  } else if (r.user_id === me()) {
    actions.append(badge('About you: another admin must approve it', true));
  } else {
    actions.append(badge('Waiting for a second admin', true));
  }
  return ui.el('li', { class: 'item', dataset: { requestId: r.request_id } }, main, actions);
}

const APPROVE_TEXT = {
  mfa_reset: (r) => `${r.user_id}'s sign-in methods, recovery codes and trusted devices are removed and every session ends: they set up a new method at their next sign-in.`,
  admin_invitation: (r) => `${r.user_id} is created with the roles ${(r.roles || []).join(', ')} and the invitation is emailed now.`,
  role_grant: (r) => `${r.user_id} gets the role ${(r.roles || []).join(', ')}.`,
  role_revocation: (r) => `${r.user_id} loses the role ${(r.roles || []).join(', ')}.`,
  admin_deactivation: (r) => `${r.user_id} is deactivated and signed out everywhere at once.`,
};

async function approveRequest(refs, request, button) {
  const ok = await ui.confirmAction({
    title: `Approve: ${requestTitle(request)}?`,
    text: `${(APPROVE_TEXT[request.kind] || (() => 'It is carried out at once.'))(request)} Requested by ${request.requested_by}: “${request.reason}”.`,
    confirmLabel: 'Approve',
  });
  if (!ok) return;
  button.disabled = true;
  ui.say(refs.error, '');
  try {
    const done = await admin(() => api.adminApprove(request.request_id));
    let notice = `Approved and carried out: ${requestTitle(request)}.`;
    if (done.invitation) notice += ` The invitation was sent to ${done.invitation.sent_to}.`;
    await showRequests({ notice });
  } catch (error) {
    button.disabled = false;
    ui.showError(refs.error, error, 'consoleApprove');
  }
}

// ---- One user -----------------------------------------------------------------------------------

function factorName(f) {
  if (f.type === 'phone') return `Mobile phone ${f.phone || ''}`.trim();
  if (f.type === 'email') return `Email ${f.email || ''}`.trim();
  return FACTOR_KINDS[f.type] || f.type;
}

function lockText(until) {
  return until ? `Locked until ${ui.formatDateTime(until)}` : 'Not locked';
}

function facts(user) {
  return [
    ['Status', STATUS[user.status] || user.status],
    ['Roles', (user.roles || []).join(', ') || 'None'],
    ['Email', user.email || '—'],
    ['Created', ui.formatDateTime(user.created_at)],
    ['Last sign-in', user.last_sign_in_at ? ui.formatDateTime(user.last_sign_in_at) : 'Never'],
    ['Password', user.invitation_pending
      ? 'Not set: the invitation has not been accepted yet'
      : user.password_changed_at ? `Set ${ui.formatDateTime(user.password_changed_at)}` : 'Set'],
    ['New password required', user.password_change_required ? 'Yes, after the next sign-in' : 'No'],
    ['Password lock', lockText(user.locked_until)],
    ['Second-factor lock', lockText(user.second_factor_locked_until)],
    ['Trusted devices', String(user.trusted_devices)],
    ['Recovery codes left', String(user.recovery_codes_remaining)],
  ];
}

function renderUser(refs, user) {
  refs.title.textContent = user.user_id;
  const badges = [badge(STATUS[user.status] || user.status, user.status !== 'active')];
  if (user.locked_until || user.second_factor_locked_until) badges.push(badge('Locked', true));
  if (user.invitation_pending) badges.push(badge('Invitation pending', true));
  for (const role of user.roles || []) badges.push(badge(role));
  refs.badges.replaceChildren(...badges);
  refs.facts.replaceChildren(...facts(user).flatMap(([term, value]) => [
    ui.el('dt', { text: term }), ui.el('dd', { text: value, dataset: { fact: term } })]));
  refs.factors.replaceChildren(...user.factors.map((f) => ui.el('li', { class: 'item' },
    ui.el('div', { class: 'item__main' },
      ui.el('strong', { text: factorName(f) }),
      f.status === 'pending' ? badge('Not confirmed', true) : null,
      ui.el('span', { class: 'item__meta', text: [f.delivery ? CHANNELS[f.delivery] : null, `added ${ui.formatDate(f.created_at)}`].filter(Boolean).join(' · ') })))));
  if (!user.factors.length) {
    refs.factors.append(ui.el('li', { class: 'item item--empty', text: 'No sign-in methods: they set one up at their next sign-in.' }));
  }
  const self = user.user_id === me();
  refs.self.hidden = !self;
  refs.actions.hidden = self;
  refs.resetBlock.hidden = self;
  refs.rolesBlock.hidden = self;
  // Unlock stands out while a lock runs (it clears both, and is harmless otherwise).
  refs.unlock.classList.toggle('button--secondary', !(user.locked_until || user.second_factor_locked_until));
  refs.deactivate.hidden = user.status !== 'active';
  refs.reactivate.hidden = user.status === 'active';
}

function renderRoles(refs, user, removeRole) {
  const roles = user.roles || [];
  refs.roles.replaceChildren(...roles.map((role) => {
    const remove = ui.el('button', { type: 'button', class: 'button button--secondary button--small button--danger-outline' },
      'Remove', ui.el('span', { class: 'visually-hidden', text: ` the role ${ROLE_NAMES[role] || role}` }));
    remove.addEventListener('click', () => removeRole(role, remove));
    return ui.el('li', { class: 'item' },
      ui.el('div', { class: 'item__main' }, ui.el('strong', { text: ROLE_NAMES[role] || role })),
      ui.el('div', { class: 'item__actions' }, remove));
  }));
  if (!roles.length) refs.roles.append(ui.el('li', { class: 'item item--empty', text: 'No roles.' }));
  const missing = Object.keys(ROLE_NAMES).filter((role) => !roles.includes(role));
  refs.roleSelect.replaceChildren(...missing.map((role) => ui.el('option', {
    value: role, text: role === 'admin' ? `${ROLE_NAMES[role]} (needs a second admin)` : ROLE_NAMES[role],
  })));
  refs.roleForm.hidden = missing.length === 0;
}

function renderDeliveries(refs, deliveries) {
  refs.noDeliveries.hidden = deliveries.length > 0;
  refs.deliveriesTable.hidden = deliveries.length === 0;
  refs.deliveries.replaceChildren(...deliveries.map((d) => ui.el('tr', {},
    ui.el('td', { text: ui.formatDateTime(d.at) }),
    ui.el('td', { text: deliveryPurpose(d.purpose) }),
    ui.el('td', { text: CHANNELS[d.channel] || d.channel }),
    ui.el('td', {}, ...ui.textNodes(d.to || '—')),
    ui.el('td', {}, d.outcome === 'sent' ? 'Sent' : badge(d.outcome === 'failed' ? 'Failed' : String(d.outcome), true)),
    ui.el('td', {},
      d.provider_message_id ? ui.el('code', { class: 'message-id', text: d.provider_message_id }) : '—',
      d.provider ? ui.el('span', { class: 'item__meta', text: ` (${d.provider})` }) : null))));
}

function actorText(actor) {
  if (actor === 'self') return 'The user';
  if (actor === 'system') return 'System';
  return actor === me() ? `${actor} (you)` : actor;
}

function renderEvents(refs, events) {
  refs.noEvents.hidden = events.length > 0;
  refs.eventsTable.hidden = events.length === 0;
  refs.events.replaceChildren(...events.map((e) => {
    // A request's detail is the admin's reason (or who requested it): shown as written.
    const verbatim = /_(requested|approved|refused)$/.test(e.kind);
    const details = [verbatim ? e.detail : eventDetail(e.detail), e.outcome && e.outcome !== 'success' ? `(${e.outcome})` : null].filter(Boolean).join(' ');
    return ui.el('tr', {},
      ui.el('td', { text: ui.formatDateTime(e.at) }),
      ui.el('td', { text: eventLabel(e.kind) }),
      ui.el('td', { text: details || '—' }),
      ui.el('td', { text: actorText(e.actor) }),
      ui.el('td', { text: e.source_ip || '—' }));
  }));
}

/** The detail of one user, their deliveries and events, and what an admin can do. */
export async function showUser(userId, { notice } = {}) {
  const refs = consoleScreen('t-console-user', 'users');
  refs.title.textContent = userId;
  ui.say(refs.notice, notice);
  refs.back.addEventListener('click', () => showUsers());
  let user;
  try {
    user = await admin(() => api.adminUser(userId));
  } catch (error) {
    refs.loading.hidden = true;
    ui.showError(refs.error, error, 'console');
    return;
  }
  refs.loading.hidden = true;
  refs.body.hidden = false;
  renderUser(refs, user);
  wireActions(refs, user);
  const [deliveries, events] = await Promise.allSettled([
    admin(() => api.adminDeliveries(user.user_id)),
    admin(() => api.adminEvents(user.user_id)),
  ]);
  if (deliveries.status === 'fulfilled') renderDeliveries(refs, deliveries.value);
  else ui.showError(refs.error, deliveries.reason, 'console');
  if (events.status === 'fulfilled') renderEvents(refs, events.value);
  else if (deliveries.status === 'fulfilled') ui.showError(refs.error, events.reason, 'console');
}

/** An action button: confirm (when `confirm` is given), call, then show the user again. */
function onAction(refs, button, { confirm, run, done }) {
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    if (confirm && !(await ui.confirmAction(confirm))) return;
    button.disabled = true;
    ui.say(refs.error, '');
    ui.say(refs.notice, '');
    try {
      const answer = await run();
      await done(answer);
    } catch (error) {
      ui.showError(refs.error, error, 'console');
    } finally {
      button.disabled = false;
    }
  });
}

function wireActions(refs, user) {
  const id = user.user_id;
  const again = (notice) => showUser(id, { notice });
  const waiting = (data, what) => `Waiting for a second admin: ${what} needs another administrator's approval in Approvals, before ${ui.formatDateTime(data.expires_at)}. Nothing changed yet.`;
  onAction(refs, refs.unlock, {
    run: () => admin(() => api.adminAct(id, 'unlock')),
    done: () => again(`${id} is unlocked: the password lock and the second-factor lock are cleared, and the failed attempts forgotten.`),
  });
  onAction(refs, refs.force, {
    confirm: {
      title: `Require a new password for ${id}?`,
      text: 'At their next sign-in, after the code, they must choose a new password before going on.',
      confirmLabel: 'Require a new password',
    },
    run: () => admin(() => api.adminAct(id, 'force-password-change')),
    done: () => again(`${id} must choose a new password at their next sign-in.`),
  });
  onAction(refs, refs.deactivate, {
    confirm: {
      title: `Deactivate ${id}?`,
      text: 'They are signed out everywhere at once, their trusted devices stop working and they cannot sign in until reactivated. They are told by email or text message.',
      confirmLabel: 'Deactivate',
    },
    run: () => admin(() => api.adminAct(id, 'deactivate')),
    done: ({ status, data }) => again(status === 202
      ? waiting(data, 'deactivating an administrator')
      : `${id} is deactivated and signed out everywhere.`),
  });
  onAction(refs, refs.reactivate, {
    run: () => admin(() => api.adminAct(id, 'reactivate')),
    done: () => again(`${id} is active again and can sign in.`),
  });
  renderRoles(refs, user, async (role, button) => {
    const name = ROLE_NAMES[role] || role;
    const ok = await ui.confirmAction({
      title: `Remove the role ${name} from ${id}?`,
      text: role === 'admin'
        ? 'Taking the administrator role from an administrator waits for a second administrator.'
        : 'It is removed at once.',
      confirmLabel: 'Remove the role',
    });
    if (!ok) return;
    button.disabled = true;
    ui.say(refs.error, '');
    try {
      const { status, data } = await admin(() => api.adminRevokeRole(id, role));
      await again(status === 202 ? waiting(data, 'taking the administrator role from an administrator') : `${id} no longer has the role ${name}.`);
    } catch (error) {
      button.disabled = false;
      ui.showError(refs.error, error, 'console');
    }
  });
  ui.handleForm(refs.roleForm, refs.error, async (values) => {
    const name = ROLE_NAMES[values.role] || values.role;
    const { status, data } = await admin(() => api.adminGrantRole(id, values.role, values.reason.trim()));
    await again(status === 202 ? waiting(data, 'granting the administrator role') : `${id} now has the role ${name}.`);
  }, consoleError(refs.error));
  ui.handleForm(refs.resetForm, refs.error, async (values) => {
    ui.say(refs.notice, '');
    const pending = await admin(() => api.adminRequestMfaReset(id, values.reason.trim()));
    refs.resetForm.reset();
    ui.say(refs.notice, `Reset requested. Waiting for a second admin: another administrator must approve it in Approvals before ${ui.formatDateTime(pending.expires_at)}. Nothing changed yet.`);
  }, consoleError(refs.error));
}
