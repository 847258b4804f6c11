// Drives Cone's web console in Debian's Chromium, as people would, for crates/cone-testkit/tests/e2e/web.rs.
//
//   node console.mjs request   alice requests production AdministratorAccess, bob approves it with a comment,
//                              alice sees the grant active; prints {"task": N}
//   node console.mjs release   alice releases it; carol (an administrator) looks at the audit log, drift and the
//                              access keys
//   node console.mjs expire    alice asks for 40 seconds of it again and bob approves; once alice sees it active,
//                              prints {"task": N}
//   node console.mjs expired   alice sees that request expired, and no active access left
//   node console.mjs policies  carol shortens the administrators' policy to 30 minutes on the Policies page, finds it
//                              in the history and the connector connected, sets the default entitlement-management
//                              rule on the Apps page; alice's request form offers 30 minutes at
//                              most, and the administrators' pages are closed to her
//   node console.mjs review    carol, alice's and bob's manager, certifies bob's grant and revokes alice's standing
//                              assignment on the Reviews page (CONE_CAMPAIGN, made by the Rust test); as an
//                              administrator she follows the campaign, closes it and downloads its report
//   node console.mjs org       at the size of an organisation (bench/seed_org.py: 200 accounts × 20 permission sets,
//                              2,000 people): alice finds ps-07 on acct-0150 by three words in the catalog, requests
//                              it and sees it active; carol narrows the audit log to alice's actions this week and
//                              sees her by name; prints {"task": N}
//   node console.mjs oidc      alice signs in through the OpenID Connect provider (OIDC_NAME; oidc-provider.mjs) and
//                              approves `cone login`'s code (CONE_USER_CODE) on the device page; mallory, whom Cone
//                              does not know, is refused
//
// The Rust test checks AWS (moto) after `request`, `release`, `expire` and `expired`. Environment: CONE_URL, CONE_SCREENSHOTS (a folder),
// CONE_STATE (a folder for the browser state kept between the two), CONE_PASSWORD_<USER> for alice, bob and carol.

import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const base = need('CONE_URL');
const shots = need('CONE_SCREENSHOTS');
const state = need('CONE_STATE');
const CSP =
  "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const ENTITLEMENT = 'AdministratorAccess on Production';

function need(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; crates/cone-testkit/tests/e2e/web.rs sets it`);
  return value;
}

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

// What went wrong on any of Cone's pages besides the answers the test provokes: a CSP violation or another console
// error, a stylesheet or icon that did not load. (The identity provider's pages are not Cone's to judge.)
const complaints = [];
const ours = (url) => url.startsWith(`${base}/`);

async function newPage(browser, options = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 }, ...options });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (ours(page.url()) && m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      complaints.push(`${page.url()}: ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (ours(r.url()) && r.request().resourceType() !== 'document' && r.status() >= 400) {
      complaints.push(`${r.url()}: ${r.status()}`);
    }
  });
  page.on('requestfailed', (r) => ours(r.url()) && complaints.push(`${r.url()}: ${r.failure()?.errorText}`));
  return { context, page };
}

async function shot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function heading(page, text) {
  await page.getByRole('heading', { level: 1, name: text }).waitFor({ timeout: 30000 });
}

/// Signs `user` in through the sign-in form, from a page that needs it.
async function signIn(browser, user, screenshot) {
  const { context, page } = await newPage(browser);
  const resp = await page.goto(`${base}/console`);
  check(resp.headers()['content-security-policy'] === CSP, `the CSP of the sign-in page: ${resp.headers()['content-security-policy']}`);
  await heading(page, 'Sign in to Cone');
  if (screenshot) await shot(page, 'sign-in');
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(need(`CONE_PASSWORD_${user.toUpperCase()}`));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await heading(page, 'Catalog');
  return { context, page };
}

/// The form token of the page, to send requests a page would not.
async function token(page) {
  return page.locator('input[name="csrf"]').first().inputValue();
}

async function request(browser) {
  const alice = await signIn(browser, 'alice', true);
  // The catalog fills at the server's first sync with AWS.
  const link = alice.page.getByRole('link', { name: `Request ${ENTITLEMENT}` });
  for (let i = 0; i < 60 && !(await link.count()); i++) {
    await alice.page.waitForTimeout(1000);
    await alice.page.reload();
  }
  const catalog = await alice.page.reload();
  check(catalog.headers()['content-security-policy'] === CSP, 'the CSP of the catalog');
  await shot(alice.page, 'catalog');
  // A policy's own form fields are on the form (the sandbox's DatabaseAdministrator needs a ticket).
  await alice.page.getByRole('link', { name: 'Request DatabaseAdministrator on Production' }).click();
  await alice.page.getByRole('group', { name: 'Request form' }).getByLabel('ticket').waitFor();
  await shot(alice.page, 'request-form-fields');
  await alice.page.goBack();
  // Three words find it among everything offered, and the search stays in the address.
  await alice.page.getByRole('searchbox', { name: 'Search' }).fill('prod admin access');
  await alice.page.getByRole('button', { name: 'Search' }).click();
  await alice.page.getByRole('status').getByText('1 entitlement matches.').waitFor();
  check(new URL(alice.page.url()).searchParams.get('q') === 'prod admin access', `the words in ${alice.page.url()}`);
  check((await alice.page.getByRole('link', { name: /^Request .* on Staging$/ }).count()) === 0, 'the search leaves out the rest');
  await shot(alice.page, 'catalog-search');
  await link.click();
  await heading(alice.page, 'Request access');
  // The server checks the form: a field it cannot read is named, and what was typed stays.
  await alice.page.getByLabel('Duration').fill('soon');
  await alice.page.getByLabel('Justification').fill('Deploy the hotfix for OPS-42');
  await alice.page.getByRole('button', { name: 'Submit request' }).click();
  await alice.page.getByRole('alert').getByText('`soon` is not a duration').waitFor();
  check((await alice.page.getByLabel('Duration').getAttribute('aria-invalid')) === 'true', 'the duration is marked invalid');
  await shot(alice.page, 'request-form-errors');
  await alice.page.getByLabel('Duration').fill('30m');
  await shot(alice.page, 'request-form');
  await alice.page.getByRole('button', { name: 'Submit request' }).click();
  await heading(alice.page, 'My requests and access');
  const task = Number(new URL(alice.page.url()).searchParams.get('submitted'));
  check(task > 0, `a task id in ${alice.page.url()}`);
  await alice.page.getByText(`Request ${task} submitted. It waits for approval`).waitFor();
  await shot(alice.page, 'my-requests-pending');

  // A POST without the form token is refused, and does nothing (alice stays signed in).
  const forged = await alice.context.request.post(`${base}/console/logout`, { form: { x: 'y' }, maxRedirects: 0 });
  check(forged.status() === 403, `a POST without the form token answered ${forged.status()}`);
  check(forged.headers()['content-security-policy'] === CSP, 'the CSP of an error page');
  // The requester cannot decide her own request, even by posting the approver's form with a valid token.
  const own = await alice.context.request.post(`${base}/console/tasks/${task}/decide`, {
    form: { csrf: await token(alice.page), decision: 'approve', comment: 'myself' },
    maxRedirects: 0,
  });
  check(own.status() === 403, `alice approving her own request answered ${own.status()}`);
  await alice.page.goto(`${base}/console/inbox`);
  await alice.page.getByText('No request waits for your decision.').waitFor();

  const bob = await signIn(browser, 'bob', false);
  await bob.page.getByRole('link', { name: 'Approvals' }).click();
  await heading(bob.page, 'Approvals');
  const card = bob.page.getByRole('article', { name: `Request ${task}: ${ENTITLEMENT}` });
  await card.getByText('Deploy the hotfix for OPS-42').waitFor();
  await card.getByText('alice', { exact: true }).waitFor();
  await card.getByLabel('Comment').fill('Approved for the hotfix window');
  await shot(bob.page, 'approvals');
  await card.getByRole('button', { name: 'Approve' }).click();
  await bob.page.getByText(`You approved request ${task}.`).waitFor();
  await shot(bob.page, 'approvals-done');

  // Provisioning runs in the server's workers against AWS; the grant shows once it is active.
  await reloadUntil(alice.page, `${base}/console/requests`, activeRow(alice.page));
  await shot(alice.page, 'my-requests-granted');
  // The request's own page has its history, with bob's comment.
  await alice.page.getByRole('link', { name: `Request ${task}`, exact: true }).click();
  await heading(alice.page, `Request ${task}`);
  await alice.page.getByRole('cell', { name: 'Approved for the hotfix window' }).waitFor();
  await shot(alice.page, 'request-history');
  await alice.page.goto(`${base}/console/requests`);
  // More time on the same grant is a request of its own, which the same policy sends to the approvers.
  await alice.page.getByLabel(`More time for ${ENTITLEMENT}`).fill('15m');
  await alice.page.getByRole('button', { name: 'Extend' }).click();
  await alice.page.getByText(/Request \d+ submitted\. It waits for approval/).waitFor();
  await alice.page.getByText('(extension)').waitFor();
  await shot(alice.page, 'my-requests-extension');
  await alice.context.storageState({ path: join(state, 'alice.json') });
  console.log(JSON.stringify({ task }));
}

async function org(browser) {
  const entitlement = 'ps-07 on acct-0150';
  const alice = await signIn(browser, 'alice', false);
  await alice.page.getByRole('searchbox', { name: 'Search' }).fill('acct 0150 ps-07');
  await alice.page.getByRole('button', { name: 'Search' }).click();
  // An organisation's sync may hold the database's writer meanwhile, on a machine busy with other tests.
  await alice.page.getByRole('status').getByText('1 entitlement matches.').waitFor({ timeout: 120000 });
  await shot(alice.page, 'org-catalog-search');
  await alice.page.getByRole('link', { name: `Request ${entitlement}` }).click();
  const task = await submitRequest(alice.page, '30m', 'Look into the billing alarm');
  const active = alice.page.getByRole('region', { name: 'Active access' }).getByRole('rowheader', { name: entitlement });
  await reloadUntil(alice.page, `${base}/console/requests`, active);
  await shot(alice.page, 'org-my-requests');

  const carol = await signIn(browser, 'carol', false);
  await carol.page.getByRole('link', { name: 'Audit log' }).click();
  await heading(carol.page, 'Audit log');
  await alicesWeek(carol.page, 'org-audit-log-person');
  console.log(JSON.stringify({ task }));
}

async function release(browser) {
  const { page } = await newPage(browser, { storageState: join(state, 'alice.json') });
  await page.goto(`${base}/console/requests`);
  await heading(page, 'My requests and access');
  await page.getByRole('button', { name: `Release ${ENTITLEMENT}` }).click();
  await page.getByText('Access released; Cone is removing it from AWS.').waitFor();
  await shot(page, 'my-requests-released');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByText('You are signed out.').waitFor();

  const carol = await signIn(browser, 'carol', false);
  await carol.page.getByRole('link', { name: 'Audit log' }).click();
  await heading(carol.page, 'Audit log');
  await carol.page.getByLabel('Action').fill('task.*');
  await carol.page.getByRole('button', { name: 'Filter' }).click();
  await carol.page.getByText('Approved for the hotfix window').waitFor();
  await shot(carol.page, 'audit-log');
  await carol.page.getByLabel('Action').fill('');
  await alicesWeek(carol.page, 'audit-log-person');
  await carol.page.getByRole('link', { name: 'Drift' }).click();
  await heading(carol.page, 'Drift');
  await shot(carol.page, 'drift');
  // The access-key inventory: the test's IAM user `deployer` holds one key, never used.
  await carol.page.getByRole('link', { name: 'Access keys' }).click();
  await heading(carol.page, 'Access keys');
  const key = carol.page.getByRole('row').filter({ hasText: 'deployer' });
  await key.getByRole('rowheader', { name: /^AKIA/ }).waitFor();
  await key.getByText('Never used').waitFor();
  await shot(carol.page, 'access-keys');
  await carol.page.getByLabel('Status').selectOption('Inactive');
  await carol.page.getByRole('button', { name: 'Filter' }).click();
  await carol.page.getByText('No access keys match.').waitFor();
}

// A short grant that ends by itself. The requests page refreshes itself only when reloaded, so it is reloaded.
async function expire(browser) {
  const alice = await signIn(browser, 'alice', false);
  await (await catalogOffers(alice.page, `Request ${ENTITLEMENT}`)).click();
  const task = await submitRequest(alice.page, '40s', 'Rotate the certificate');

  const bob = await signIn(browser, 'bob', false);
  await bob.page.goto(`${base}/console/inbox`);
  const card = bob.page.getByRole('article', { name: `Request ${task}: ${ENTITLEMENT}` });
  await card.getByRole('button', { name: 'Approve' }).click();
  await bob.page.getByText(`You approved request ${task}.`).waitFor();

  await reloadUntil(alice.page, `${base}/console/requests`, activeRow(alice.page));
  console.log(JSON.stringify({ task }));
}

async function expired(browser) {
  const { page } = await signIn(browser, 'alice', false);
  const task = await lastTask(page);
  const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: `Request ${task}`, exact: true }) });
  await reloadUntil(page, `${base}/console/requests`, row.getByText('expired', { exact: true }));
  await page.getByText('You hold no access now.').waitFor();
  await shot(page, 'my-requests-expired');
}

/// The row of the active grant of ENTITLEMENT on the requests page.
function activeRow(page) {
  return page.getByRole('region', { name: 'Active access' }).getByRole('rowheader', { name: ENTITLEMENT });
}

/// The newest of alice's requests, as her requests page lists it first.
async function lastTask(page) {
  await page.goto(`${base}/console/requests`);
  const link = page.getByRole('link', { name: /^Request \d+$/ }).first();
  return Number((await link.textContent()).replace('Request ', ''));
}

/// Fills the request form the page shows and submits it; answers the new task's id.
async function submitRequest(page, duration, justification) {
  await heading(page, 'Request access');
  await page.getByLabel('Duration').fill(duration);
  await page.getByLabel('Justification').fill(justification);
  await page.getByRole('button', { name: 'Submit request' }).click();
  await heading(page, 'My requests and access');
  const task = Number(new URL(page.url()).searchParams.get('submitted'));
  check(task > 0, `a task id in ${page.url()}`);
  return task;
}

/// On the audit log: alice's actions since a week ago, each shown by her name, her request among them.
async function alicesWeek(page, screenshot) {
  const weekAgo = new Date(Date.now() - 7 * 24 * 3600 * 1000).toISOString().slice(0, 10);
  await page.getByLabel('Person').fill('alice');
  await page.getByLabel('Since').fill(weekAgo);
  await page.getByRole('button', { name: 'Filter' }).click();
  const who = page.locator('tbody tr td:nth-child(3)');
  await who.first().waitFor();
  const names = await who.allInnerTexts();
  check(names.length > 0 && names.every((n) => n === 'alice'), `only alice's actions, by name: ${names}`);
  check((await page.getByRole('cell', { name: 'task.create' }).count()) > 0, 'her request is listed');
  await shot(page, screenshot);
}

/// Loads `url` until `locator` shows, for up to a minute (the server's workers act in the background).
async function reloadUntil(page, url, locator) {
  for (let i = 0; i < 60; i++) {
    await page.goto(url);
    if (await locator.count()) return;
    await page.waitForTimeout(1000);
  }
  await locator.first().waitFor({ timeout: 1000 });
}

/// Waits for the catalog to offer `name` (it fills at the server's first sync with AWS).
async function catalogOffers(page, name) {
  const link = page.getByRole('link', { name });
  for (let i = 0; i < 60 && !(await link.count()); i++) {
    await page.waitForTimeout(1000);
    await page.reload();
  }
  return link;
}

async function policies(browser) {
  const carol = await signIn(browser, 'carol', false);
  await carol.page.getByRole('link', { name: 'Policies' }).click();
  await heading(carol.page, 'Policies');
  await carol.page.getByRole('heading', { name: 'In force: version 1' }).waitFor();
  await shot(carol.page, 'policies');
  const editor = carol.page.getByLabel('Access document (YAML)');
  const document = await editor.inputValue();
  const shorter = document.replace(/(name: admin-needs-an-approver\n[\s\S]*?max_duration: )1h/, (_, head) => `${head}30m`);
  check(shorter !== document, `the administrators' policy in the document:\n${document}`);
  // A mistake is named and applies nothing; the text stays to be fixed.
  await editor.fill(shorter.replace('max_duration: 30m', 'max_duration: soon'));
  await carol.page.getByRole('button', { name: 'Check' }).click();
  await carol.page.getByRole('alert').getByText('Your text is kept below.').waitFor();
  check((await editor.inputValue()).includes('max_duration: soon'), 'the text is kept after a failed check');
  await shot(carol.page, 'policies-check-error');
  await editor.fill(shorter);
  await carol.page.getByRole('button', { name: 'Check' }).click();
  await carol.page.getByText('The document checks; nothing was applied.').waitFor();
  await shot(carol.page, 'policies-checked');
  await carol.page.getByLabel('Why').fill('Administrator access for 30 minutes at most');
  await carol.page.getByRole('button', { name: 'Apply' }).click();
  await carol.page.getByText('Version 2 applied; it is in force for new requests.').waitFor();
  await carol.page.getByRole('heading', { name: 'In force: version 2' }).waitFor();
  await shot(carol.page, 'policies-applied');
  await carol.page.getByRole('link', { name: 'History of versions' }).click();
  await heading(carol.page, 'Policy history');
  const newest = carol.page.getByRole('row').nth(1);
  await newest.getByText('Administrator access for 30 minutes at most').waitFor();
  await newest.getByText('carol').waitFor();
  await shot(carol.page, 'policy-history');
  await carol.page.getByRole('link', { name: 'Version 1', exact: true }).click();
  await heading(carol.page, 'Policy version 1');
  await carol.page.getByText('the configuration file, at start-up').waitFor();
  await shot(carol.page, 'policy-version');
  await carol.page.getByRole('link', { name: 'Connectors' }).click();
  await heading(carol.page, 'Connectors');
  for (let i = 0; i < 60 && !(await carol.page.getByText('Connected', { exact: true }).count()); i++) {
    await carol.page.waitForTimeout(1000);
    await carol.page.reload();
  }
  await carol.page.getByText('Connected', { exact: true }).waitFor({ timeout: 1000 });
  await shot(carol.page, 'connectors');
  // Seed 001's step 2: the default rule makes every account's entitlements requestable (the profiles decide by whom).
  await carol.page.getByRole('link', { name: 'Apps' }).click();
  await heading(carol.page, 'Apps');
  await carol.page.getByRole('table', { name: 'Accounts' }).getByRole('rowheader', { name: 'Production' }).waitFor();
  await carol.page.getByLabel('Enable requesting').check();
  await carol.page.getByLabel('I understand').check();
  await carol.page.getByRole('button', { name: 'Apply' }).click();
  await carol.page.getByText('Version 3 of the access document applied').waitFor();
  await shot(carol.page, 'apps');

  // alice's request form now offers 30 minutes at most, and the server holds her to it.
  const alice = await signIn(browser, 'alice', false);
  check(!(await alice.page.getByRole('link', { name: 'Policies' }).count()), 'alice has no link to the Policies page');
  await (await catalogOffers(alice.page, `Request ${ENTITLEMENT}`)).click();
  await heading(alice.page, 'Request access');
  await alice.page.getByText('Such as 30m, 1h or 1h30m; at most 30m.').waitFor();
  await alice.page.getByLabel('Duration').fill('1h');
  await alice.page.getByRole('button', { name: 'Submit request' }).click();
  await alice.page.getByRole('alert').getByText('30m').first().waitFor();
  await shot(alice.page, 'request-form-shorter');
  for (const path of ['/console/policies', '/console/policies/history', '/console/connectors', '/console/access-keys', '/console/apps']) {
    const resp = await alice.page.goto(`${base}${path}`);
    check(resp.status() === 403, `alice opening ${path} answered ${resp.status()}`);
    await heading(alice.page, 'Not allowed');
  }
  await shot(alice.page, 'policies-forbidden');
}

/// Signs in at the identity provider's own (development) pages as `login`, from Cone's sign-in page.
async function throughProvider(browser, login, screenshots) {
  const { context, page } = await newPage(browser);
  await page.goto(`${base}/console/requests`);
  await heading(page, 'Sign in to Cone');
  if (screenshots) await shot(page, 'sign-in-with-provider');
  await page.getByRole('link', { name: `Sign in with ${need('OIDC_NAME')}` }).click();
  await page.locator('input[name="login"]').waitFor({ timeout: 30000 });
  check(!ours(page.url()), `the provider's login page is the provider's: ${page.url()}`);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any password will do');
  if (screenshots) await shot(page, 'provider-login');
  await page.locator('button[type="submit"]').click();
  // The provider asks for consent the first time.
  const consent = page.getByRole('button', { name: 'Continue' });
  await consent.waitFor({ timeout: 30000 });
  if (screenshots) await shot(page, 'provider-consent');
  await consent.click();
  return { context, page };
}

async function oidc(browser) {
  const alice = await throughProvider(browser, 'alice', true);
  await heading(alice.page, 'My requests and access').catch(async (e) => {
    await shot(alice.page, 'provider-failed');
    throw new Error(`${e.message}\nat ${alice.page.url()}: ${await alice.page.locator('body').innerText()}`);
  });
  await alice.page.getByText('Signed in as').getByText('alice', { exact: true }).waitFor();
  check(alice.page.url() === `${base}/console/requests`, `alice is back where she started: ${alice.page.url()}`);
  await shot(alice.page, 'provider-signed-in');
  // The address `cone login` printed leads to the device page, where alice's console session approves the code.
  await alice.page.goto(`${base}/device?user_code=${need('CONE_USER_CODE')}`);
  await heading(alice.page, 'Sign in the command line');
  check((await alice.page.getByLabel('Code').inputValue()) === need('CONE_USER_CODE'), 'the code is filled in');
  await shot(alice.page, 'device');
  await alice.page.getByRole('button', { name: 'Approve sign-in' }).click();
  await alice.page.getByText('The command line is signed in.').waitFor();
  await shot(alice.page, 'device-approved');

  const mallory = await throughProvider(browser, 'mallory', false);
  await heading(mallory.page, 'Sign-in failed');
  await mallory.page.getByText('signed you in as mallory@example.com, but no single Cone user has that email').waitFor();
  const session = (await mallory.context.cookies()).filter((c) => c.name === 'cone_session');
  check(session.length === 0, 'mallory holds no session');
  await shot(mallory.page, 'provider-unknown-user');

  // bob's address, but the provider does not say it verified it: an address anyone could have typed in.
  const unverified = await throughProvider(browser, 'bob-unverified', false);
  await heading(unverified.page, 'Sign-in failed');
  await unverified.page.getByText('has not verified your email address bob@example.com').waitFor();
  const held = (await unverified.context.cookies()).filter((c) => c.name === 'cone_session');
  check(held.length === 0, 'an unverified address opens no session');
}

async function review(browser) {
  const campaign = need('CONE_CAMPAIGN');
  const carol = await signIn(browser, 'carol', false);
  const { page } = carol;
  await page.getByRole('link', { name: 'Reviews' }).click();
  await heading(page, 'Access reviews');
  const bobsGrant = page.getByRole('checkbox', { name: 'Select bob: ReadOnlyAccess on Production' });
  const alicesAssignment = page.getByRole('checkbox', { name: 'Select alice: AdministratorAccess on Production' });
  await bobsGrant.waitFor();
  await shot(page, 'reviews-inbox');
  // A revocation needs a reason: without one nothing is decided and the page says why.
  await alicesAssignment.check();
  await page.getByRole('button', { name: 'Revoke selected' }).click();
  await heading(page, 'Cannot do that');
  await page.getByText('A revocation needs a comment').waitFor();
  await page.goto(`${base}/console/reviews`);
  // Filtered to one person, then decided.
  await page.getByLabel('Person').fill('bob');
  await page.getByRole('button', { name: 'Filter' }).click();
  check(new URL(page.url()).searchParams.get('user') === 'bob', `the filter in ${page.url()}`);
  check((await alicesAssignment.count()) === 0, 'the filter leaves out alice');
  await bobsGrant.check();
  await page.getByRole('button', { name: 'Certify selected' }).click();
  await page.getByRole('status').getByText('1 item(s) decided.').waitFor();
  await page.goto(`${base}/console/reviews`);
  await alicesAssignment.check();
  await page.getByLabel('Comment').fill('Standing admin access is not allowed');
  await page.getByRole('button', { name: 'Revoke selected' }).click();
  await page.getByRole('status').getByText('1 item(s) decided.').waitFor();
  await page.getByText('Nothing to review.').waitFor();
  await shot(page, 'reviews-decided');

  // The administrator's side: the campaign's progress and items, closing it, and its report.
  await page.getByRole('link', { name: 'Campaigns' }).click();
  await heading(page, 'Review campaigns');
  await shot(page, 'review-campaigns');
  await page.getByRole('link', { name: 'Production review' }).click();
  await heading(page, 'Review campaign: Production review');
  await page.getByRole('cell', { name: 'Standing admin access is not allowed' }).waitFor();
  await page.getByRole('button', { name: 'Close the campaign' }).click();
  await page.getByText('closed on ').waitFor();
  await shot(page, 'review-campaign-closed');
  await page.emulateMedia({ media: 'print' });
  check(!(await page.getByRole('navigation', { name: 'Console' }).isVisible()), 'the navigation is not printed');
  await shot(page, 'review-campaign-print');
  await page.emulateMedia({ media: 'screen' });
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Download the report (CSV)' }).click(),
  ]);
  // Chromium reports the navigation that became the download as aborted; that is the download, not a failure.
  const aborted = complaints.indexOf(`${download.url()}: net::ERR_ABORTED`);
  if (aborted >= 0) complaints.splice(aborted, 1);
  check(download.suggestedFilename() === `cone-review-${campaign}.csv`, `the report's name: ${download.suggestedFilename()}`);
  const file = join(state, 'report.csv');
  await download.saveAs(file);
  const text = readFileSync(file, 'utf8');
  check(text.startsWith('campaign,campaign_state,item,'), `the report's header: ${text.slice(0, 80)}`);
  check(text.includes('Standing admin access is not allowed') && text.includes('closed'), `the report: ${text}`);
  console.log(JSON.stringify({ report: file }));
}

const phases = { request, release, expire, expired, policies, review, oidc, org };
const phase = phases[process.argv[2]];
if (!phase) throw new Error(`usage: node console.mjs ${Object.keys(phases).join('|')}`);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Chromium's sandbox needs user namespaces, which containers and root often lack; the pages are our own.
  args: ['--no-sandbox'],
});
try {
  await phase(browser);
  check(complaints.length === 0, `the browser reported:\n${complaints.join('\n')}`);
} finally {
  await browser.close();
}
