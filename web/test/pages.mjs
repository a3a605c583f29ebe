// Drives Debian's Chromium (playwright-core) over every page of the UI against a running daemon.
// Started by crates/hostplane/tests/web_ui_pages.rs, which sets up the daemon (with
// events.max_stream_secs = 5), a btrfs pool `uipool` with a dataset `docs`, and an admin:
//   HP_URL, HP_USER/HP_PASS (the admin's login), HP_TOKEN (an API token of that admin),
//   HP_KIT (the test guest: vmlinuz, initrd.gz), HP_ARTIFACTS (where screenshots go).
// Fails (exit 1) on a step that does not happen, an axe (wcag2a/aa) violation on any page, a
// page error, a CSP violation, or any request to another origin.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import path from 'node:path';
import net from 'node:net';

const env = (k) => process.env[k] ?? (() => { throw new Error(`${k} is not set`); })();
const base = env('HP_URL');
const origin = new URL(base).origin;
const artifacts = env('HP_ARTIFACTS');
const kit = env('HP_KIT');
const token = env('HP_TOKEN');
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

const problems = [];
const t0 = Date.now();
const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});

/** Requests to the event stream, with their Last-Event-ID header. */
const streams = [];

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('request', async (r) => {
    const u = r.url();
    if (!u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith(origin.replace('http', 'ws') + '/')) {
      problems.push(`request to another origin: ${u}`);
    }
    if (u.includes('/api/v1/events?')) streams.push({ at: Date.now(), lastId: (await r.allHeaders())['last-event-id'] ?? new URL(u).searchParams.get('last_event_id') });
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) problems.push(`CSP violation: ${m.text()}`);
  });
  return { context, page };
}

async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
  );
  for (const v of result.violations) {
    problems.push(`axe ${name}: ${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`);
  }
  log(`axe ${name}: ${result.violations.length} violations, ${result.passes.length} rules passed`);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

async function visit(page, route, heading) {
  await page.getByRole('navigation').getByRole('link', { name: heading, exact: true }).click();
  await page.waitForURL(`**/#/${route}`);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

async function step(name, f) {
  try {
    await f();
    log(`ok: ${name}`);
  } catch (e) {
    problems.push(`${name}: ${e.message.split('\n')[0]}`);
    log(`FAILED: ${name}: ${e.message}`);
  }
}

const api = (p, init = {}) =>
  fetch(`${base}${p}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });

const { context, page } = await newPage();
try {
  await step('log in', async () => {
    await page.goto(base + '/');
    await page.getByLabel('Username', { exact: true }).fill(env('HP_USER'));
    await page.getByLabel('Password', { exact: true }).fill(env('HP_PASS'));
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
  });
  await step('the dashboard draws the host charts (lazy chunk) from the metrics history', async () => {
    // Two points (the history, then live samples every second) make a line.
    await page.waitForFunction(() => [...document.querySelectorAll('[data-charts] polyline')].some((p) => p.getAttribute('points').split(' ').length >= 2), null, { timeout: 60000 });
    await axe(page, 'dashboard');
    await shot(page, 'dashboard');
  });
  const pages = [
    ['disks', 'Disks'], ['pools', 'Pools'], ['datasets', 'Datasets'], ['shares', 'Shares'], ['vms', 'Virtual machines'],
    ['containers', 'Containers'], ['network', 'Network'], ['services', 'Services'], ['system', 'System'],
    ['users', 'Users and tokens'], ['audit', 'Audit log'],
  ];
  for (const [route, heading] of pages) {
    await step(`the ${heading} page renders and passes axe`, async () => {
      await visit(page, route, heading);
      // Its data (a table) or what it says instead (Loading, Could not load, No …).
      await page.locator('main table, main p.muted').first().waitFor();
      await page.waitForFunction(() => !document.querySelector('main')?.textContent?.includes('Loading…'), null, { timeout: 15000 }).catch(() => {});
      await axe(page, route);
      await shot(page, route);
    });
  }
  await step('dark mode: dashboard and VMs pass axe', async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await visit(page, 'dashboard', 'Dashboard');
    await page.locator('[data-charts] svg').first().waitFor();
    await axe(page, 'dashboard (dark)');
    await shot(page, 'dashboard-dark');
    await visit(page, 'system', 'System');
    await axe(page, 'system (dark)');
    await shot(page, 'system-dark');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('a dataset snapshot is taken through the UI, retention set', async () => {
    await visit(page, 'datasets', 'Datasets');
    await page.getByRole('link', { name: /snapshots of docs$/ }).click();
    await page.getByRole('heading', { name: 'Snapshots of uipool/docs' }).waitFor();
    await page.getByLabel('Snapshot name (empty: the time)').fill('ui-snap');
    await page.getByRole('button', { name: 'Take snapshot' }).click();
    await page.getByRole('rowheader', { name: 'ui-snap', exact: true }).waitFor();
    await page.getByLabel('Keep the newest (empty: all)').fill('5');
    await page.getByRole('button', { name: 'Save retention' }).click();
    await page.getByText('Retention saved.').waitFor();
    await axe(page, 'snapshots');
    await shot(page, 'snapshots');
  });

  await step('a running job is cancelled from the jobs panel', async () => {
    const r = await api('/api/v1/system/selftest', { method: 'POST', body: JSON.stringify({ step_delay_ms: 5000 }) });
    if (r.status !== 202) throw new Error(`selftest: ${r.status} ${await r.text()}`);
    const { id } = await r.json();
    await page.locator(`.jobs li[data-job="${id}"]`).getByRole('button', { name: 'Cancel' }).click();
    await page.locator(`.jobs li[data-job="${id}"][data-status=cancelled]`).waitFor();
  });

  let vmId = null;
  await step('a VM created in the form starts', async () => {
    await visit(page, 'vms', 'Virtual machines');
    await page.getByLabel('VM name').fill('uivm');
    await page.getByLabel('Memory (MiB)').fill('256');
    await page.getByLabel('Accelerator').selectOption('tcg');
    await page.getByRole('button', { name: 'Remove disk 1' }).click();
    await page.getByText('Cloud-init and direct kernel boot').click();
    await page.getByLabel('Kernel', { exact: true }).fill(path.join(kit, 'vmlinuz'));
    await page.getByLabel('Initrd').fill(path.join(kit, 'initrd.gz'));
    // console=tty0 too: the kernel's messages draw on the VGA screen the VNC console shows.
    await page.getByLabel('Kernel command line').fill('console=tty0 console=ttyS0 panic=-1 mode=serve');
    // A port forward to the guest's port 22 on a free loopback port.
    const forward = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address();
        probe.close(() => resolve(port));
      });
    });
    await page.getByLabel(/NIC 1 port forwards/).fill(`${forward}:22`);
    await page.getByRole('button', { name: 'Create VM' }).click();
    await page.getByRole('link', { name: 'uivm', exact: true }).click();
    await page.getByRole('heading', { level: 2, name: /uivm/ }).waitFor();
    vmId = decodeURIComponent(new URL(page.url()).hash.split('/')[2]);
    await page.getByRole('button', { name: 'Start uivm' }).click();
    await page.locator('.badge.running').first().waitFor({ timeout: 60000 });
    await page.getByRole('tab', { name: 'Network cards' }).click();
    await page.getByRole('cell', { name: `tcp 127.0.0.1:${forward} → 22` }).waitFor();
    for (const tab of ['Disks', 'Network cards', 'CD-ROM', 'Snapshots', 'Clone and delete']) {
      await page.getByRole('tab', { name: tab }).click();
      await axe(page, `vm ${tab}`);
    }
    await shot(page, 'vm');
    await page.getByRole('tab', { name: 'Console' }).click();
  });

  await step('the VNC console (noVNC, lazy) connects and its canvas changes', async () => {
    await page.getByRole('button', { name: 'VNC console' }).click();
    await page.getByText('VNC: connected').waitFor({ timeout: 30000 });
    const canvas = page.locator('.vnc canvas');
    await canvas.waitFor();
    const hash = async () => createHash('sha256').update(await page.evaluate(() => document.querySelector('.vnc canvas').toDataURL())).digest('hex');
    const first = await hash();
    const until = Date.now() + 90000;
    while ((await hash()) === first) {
      if (Date.now() > until) throw new Error('the VNC canvas did not change in 90 s');
      await page.waitForTimeout(500);
    }
    await axe(page, 'vm vnc console');
    await shot(page, 'vm-vnc');
  });

  await step('the serial console (xterm, lazy) shows the guest text', async () => {
    await page.getByRole('button', { name: 'Serial console' }).click();
    await page.getByText('Serial: connected').waitFor({ timeout: 30000 });
    await page.locator('.xterm-rows', { hasText: 'HOSTPLANE-GUEST-READY' }).waitFor({ timeout: 180000 });
    await axe(page, 'vm serial console');
    await shot(page, 'vm-serial');
  });

  await step('a used console ticket is refused in the browser', async () => {
    const r = await api(`/api/v1/vms/${vmId}/console`, { method: 'POST', body: '{}' });
    if (r.status !== 201) throw new Error(`console ticket: ${r.status} ${await r.text()}`);
    const { serial_url } = await r.json();
    const url = origin.replace(/^http/, 'ws') + serial_url;
    // A page without the session cookie (the cookie alone would authenticate the WebSocket).
    const bare = await newPage();
    await bare.page.goto(base + '/');
    const outcome = await bare.page.evaluate(async (u) => {
      const open = () =>
        new Promise((res) => {
          const ws = new WebSocket(u);
          ws.onopen = () => { res('open'); ws.close(); };
          ws.onerror = () => res('refused');
        });
      return [await open(), await open()];
    }, url);
    await bare.context.close();
    if (outcome[0] !== 'open' || outcome[1] !== 'refused') throw new Error(`first, second use: ${outcome}`);
  });

  await step('the event stream, ended by the server, resumes with Last-Event-ID and still delivers', async () => {
    await visit(page, 'datasets', 'Datasets');
    // The daemon ends each stream after 5 s: wait for a reconnect that names the last event.
    const since = Date.now();
    const until = since + 30000;
    while (!streams.some((s) => s.at > since && s.lastId)) {
      if (Date.now() > until) throw new Error(`no resumed stream: ${JSON.stringify(streams)}`);
      await page.waitForTimeout(250);
    }
    const r = await api('/api/v1/pools/uipool/datasets', { method: 'POST', body: JSON.stringify({ name: 'after-resume' }) });
    if (r.status !== 201) throw new Error(`dataset: ${r.status}`);
    await page.getByRole('rowheader', { name: 'after-resume', exact: true }).waitFor();
    log(`${streams.length} event streams opened, ${streams.filter((s) => s.lastId).length} resumed with an id`);
  });

  await step('VM stop from the UI', async () => {
    await visit(page, 'vms', 'Virtual machines');
    await page.getByRole('button', { name: 'Stop uivm' }).click();
    await page.getByRole('button', { name: 'Start uivm' }).and(page.locator(':enabled')).waitFor({ timeout: 30000 });
  });
} catch (e) {
  problems.push(`driver: ${e.message}`);
} finally {
  await context.close();
  await browser.close();
}

log(`${problems.length} problems`);
for (const p of problems) console.log(`PROBLEM: ${p}`);
process.exit(problems.length ? 1 : 0);
