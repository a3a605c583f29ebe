// Drives Debian's Chromium (playwright-core) over the workload pages against a running daemon
// with a private dockerd (started by crates/hostplane/tests/web_ui_pages.rs, test
// `workload_pages_exec_and_host_terminal_in_chromium`):
//   HP_URL, HP_USER/HP_PASS (an admin's login), HP_TOKEN (an API token of that admin),
//   HP_ENGINE (the engine's name), HP_IMAGE (an image it has: busybox), HP_PULL (an image in a
//   local registry the engine does not have), HP_ARTIFACTS.
// Containers, stacks, LXC, workloads, network (every tab) and host terminal pages render and
// pass axe in light and dark; a container created through the form runs a command in its exec
// terminal; a stack's compose error shows its line, a valid one goes up and down as jobs; the host terminal shows a typed command's
// output and, reattached, replays it; the autostart order is saved; an image is pulled from a
// registry (its job's progress in the Images tab), the update check runs and lists the
// container, unused images are pruned. Fails (exit 1) on a step that
// does not happen, an axe violation, a page error, a CSP violation or a request elsewhere.
import { driver, env } from './lib.mjs';

const base = env('HP_URL');
const token = env('HP_TOKEN');
const engine = env('HP_ENGINE');
const image = env('HP_IMAGE');
const d = driver({ base, token, artifacts: env('HP_ARTIFACTS') });
const { step, visit, axe, shot, settled, log } = d;
const api = d.api;


await d.launch();
const { context, page } = await d.newPage();
try {
  await d.logIn(page);

  await step('the dashboard charts come from the metrics history, then live samples', async () => {
    await page.locator('[data-charts][data-source=history]').waitFor({ timeout: 30000 });
    const points = () => page.evaluate(() => document.querySelector('[data-charts] polyline')?.getAttribute('points')?.split(' ').length ?? 0);
    await page.waitForFunction(() => (document.querySelector('[data-charts] polyline')?.getAttribute('points')?.split(' ').length ?? 0) >= 2, null, { timeout: 30000 });
    const before = await points();
    // Live `metrics.sample` events (every second here) add points without a reload.
    await page.waitForFunction((n) => (document.querySelector('[data-charts] polyline')?.getAttribute('points')?.split(' ').length ?? 0) > n, before, { timeout: 30000 });
    log(`CPU chart: ${before} points from the history, ${await points()} with live samples`);
  });

  const pages = [
    ['containers', 'Containers'], ['stacks', 'Stacks'], ['lxc', 'LXC containers'],
    ['workloads', 'Workloads and autostart'], ['network', 'Network'], ['terminal', 'Host terminal'],
  ];
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    for (const [route, heading] of pages) {
      await step(`the ${heading} page renders and passes axe (${scheme})`, async () => {
        await visit(page, route, heading);
        await settled(page);
        if (route === 'network') {
          for (const tab of ['Routes', 'NAT and forwards', 'DHCP', 'Host settings']) {
            await page.getByRole('tab', { name: tab }).click();
            await settled(page);
            await axe(page, `network ${tab} (${scheme})`);
            if (scheme === 'light') await shot(page, `network-${tab.split(' ')[0].toLowerCase()}`);
          }
          await page.getByRole('tab', { name: 'Interfaces' }).click();
        }
        if (route === 'containers') {
          for (const tab of ['Volumes', 'Networks']) {
            await page.getByRole('tab', { name: tab }).click();
            await page.locator('[role=tabpanel] table').first().waitFor();
            await axe(page, `containers ${tab} (${scheme})`);
          }
          await page.getByRole('tab', { name: 'Images' }).click();
        }
        await axe(page, `${route} (${scheme})`);
        await shot(page, scheme === 'light' ? route : `${route}-dark`);
      });
    }
  }
  await page.emulateMedia({ colorScheme: 'light' });

  await step('a container created through the form runs a command in its exec terminal', async () => {
    await visit(page, 'containers', 'Containers');
    await page.getByLabel('Container name', { exact: true }).fill('uict');
    await page.getByLabel('Image', { exact: true }).fill(image);
    await page.getByLabel("Command (empty: the image's)").fill('sleep 600');
    await page.getByLabel('Environment (KEY=value lines)').fill('HP_GREETING=hello-from-env');
    await page.getByLabel('Volumes (name:/path[:ro] lines)').fill('uivol:/data');
    await page.getByLabel("Network (empty: the engine's default)").fill('none');
    await page.getByLabel('Memory limit (MiB)').fill('64');
    await page.getByLabel('Restart policy').selectOption('unless-stopped');
    await page.getByLabel('Start it once created').check();
    await page.getByRole('button', { name: 'Create container' }).click();
    const row = page.getByRole('row', { name: /uict/ });
    await row.locator('.badge.running').waitFor({ timeout: 30000 });
    await page.getByRole('button', { name: 'Terminal in uict' }).click();
    await page.getByRole('button', { name: 'Open terminal' }).click();
    await page.getByText('Shell in uict: connected').waitFor({ timeout: 30000 });
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.type('echo "$HP_GREETING" hp-exec-$((6*7)); stty size\n');
    await page.locator('.xterm-rows', { hasText: 'hp-exec-42' }).waitFor({ timeout: 20000 });
    await page.locator('.xterm-rows', { hasText: 'hello-from-env' }).waitFor();
    await axe(page, 'container exec terminal');
    await shot(page, 'container-exec');
    await page.keyboard.type('exit 5\n');
    await page.getByText('Shell in uict: exited (code 5)').waitFor({ timeout: 20000 });
  });

  await step('a stack: the compose error shows its line; a valid one is stored, goes up and down (jobs)', async () => {
    await visit(page, 'stacks', 'Stacks');
    await page.getByLabel('Stack name').fill('uistack');
    await page.getByLabel('Compose file (YAML)').fill('services:\n  web:\n    image: [unclosed\n');
    await page.getByRole('button', { name: 'Create stack' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    const text = await alert.textContent();
    if (!/line \d+/.test(text)) throw new Error(`the 422 does not name a line: ${text}`);
    log(`compose error shown: ${text}`);
    await axe(page, 'stacks with a compose error');
    await shot(page, 'stacks-error');
    await page.getByLabel('Compose file (YAML)').fill(`services:\n  web:\n    image: ${image}\n    command: sleep 600\n    network_mode: none\n`);
    await page.getByRole('button', { name: 'Create stack' }).click();
    await page.getByRole('rowheader', { name: 'uistack', exact: true }).waitFor();
    if ((await page.getByLabel('Stack name').inputValue()) !== '') throw new Error('the create form was not emptied');
    // Up and down are jobs (docker-compose on the daemon's side), followed in the jobs panel.
    await page.getByRole('button', { name: 'up uistack' }).click();
    await page.locator('.jobs li.job', { hasText: 'stacks.up' }).and(page.locator('[data-status=success]')).waitFor({ timeout: 90000 });
    await page.getByRole('row', { name: /uistack/ }).locator('.badge.running').waitFor({ timeout: 20000 });
    await shot(page, 'stacks-up');
    await page.getByRole('button', { name: 'down uistack' }).click();
    await page.locator('.jobs li.job', { hasText: 'stacks.down' }).and(page.locator('[data-status=success]')).waitFor({ timeout: 90000 });
    await page.getByRole('row', { name: /uistack/ }).locator('.badge.down').waitFor({ timeout: 20000 });
  });

  await step('workloads list the container; the autostart order is saved', async () => {
    await visit(page, 'workloads', 'Workloads and autostart');
    await page.getByRole('button', { name: 'Add uict to the autostart order' }).click();
    await page.getByLabel(`Wait after ${engine}/uict`).selectOption('running');
    await page.getByRole('button', { name: 'Save order' }).click();
    await page.getByText('Autostart order saved.').waitFor();
    const r = await api('/api/v1/autostart');
    const order = await r.json();
    if (order.items?.[0]?.name !== `${engine}/uict`) throw new Error(`autostart: ${JSON.stringify(order)}`);
  });

  await step('the host terminal shows a typed command and, reattached, its earlier output', async () => {
    await visit(page, 'terminal', 'Host terminal');
    await page.getByRole('button', { name: 'New terminal' }).click();
    await page.getByText('Host shell: connected').waitFor({ timeout: 30000 });
    await page.locator('.xterm-helper-textarea').focus();
    await page.keyboard.type('echo hp-host-$((6*7))\n');
    await page.locator('.xterm-rows', { hasText: 'hp-host-42' }).waitFor({ timeout: 20000 });
    await page.getByRole('rowheader').first().waitFor();
    await axe(page, 'host terminal');
    await shot(page, 'host-terminal');
    // Reconnect: a new ticket for the same session; the daemon replays the output.
    await page.getByRole('button', { name: 'Reconnect' }).click();
    await page.getByText('Host shell: connected').waitFor({ timeout: 30000 });
    await page.locator('.xterm-rows', { hasText: 'hp-host-42' }).waitFor({ timeout: 20000 });
    await page.keyboard.type('exit 7\n');
    await page.getByText('Host shell: exited (code 7)').waitFor({ timeout: 20000 });
  });

  await step('an image is pulled from a registry (a job with its progress), updates are checked, unused images pruned', async () => {
    await visit(page, 'containers', 'Containers');
    const eng = page.locator(`section[aria-labelledby="eng-${engine}"]`);
    await eng.getByLabel('Image to pull').fill(env('HP_PULL'));
    await eng.getByRole('button', { name: 'Pull image' }).click();
    await eng.locator('.job-inline[data-status=success]').waitFor({ timeout: 60000 });
    await eng.getByRole('rowheader', { name: new RegExp(env('HP_PULL').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) }).waitFor({ timeout: 20000 });
    await page.locator('.jobs li.job', { hasText: 'containers.image_pull' }).first().waitFor();
    await shot(page, 'containers-pull');
    await page.getByRole('button', { name: 'Check for updates' }).click();
    const upd = page.locator('section[aria-labelledby=upd-h]');
    await upd.locator('.job-inline[data-status=success]').waitFor({ timeout: 60000 });
    await upd.getByRole('rowheader', { name: 'uict', exact: true }).waitFor({ timeout: 20000 });
    log(`update statuses: ${(await upd.locator('caption').textContent()).trim()}`);
    await axe(page, 'containers with a pull and the update statuses');
    await eng.getByRole('button', { name: 'Prune unused images' }).click();
    await eng.getByText(/^Pruned \d+ images/).waitFor();
  });
} catch (e) {
  d.problems.push(`driver: ${e.message}`);
} finally {
  await context.close();
  await d.close();
}

log(`${d.problems.length} problems`);
for (const p of d.problems) console.log(`PROBLEM: ${p}`);
process.exit(d.problems.length ? 1 : 0);
