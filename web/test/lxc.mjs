// Drives Debian's Chromium (playwright-core) over the LXC page against a running daemon (started
// by crates/hostplane/tests/web_ui_pages.rs, test `lxc_create_start_console_stop_in_chromium`):
//   HP_URL, HP_USER/HP_PASS (an admin's login), HP_TOKEN (an API token of that admin),
//   HP_ARTIFACTS.
// A busybox container is created in the form (a job, followed in the jobs panel), started, its
// attach console runs a typed command, it is stopped and deleted from the list. Fails (exit 1)
// on a step that does not happen, an axe violation, a page error, a CSP violation or a request
// elsewhere.
import { driver, env } from './lib.mjs';

const base = env('HP_URL');
const token = env('HP_TOKEN');
const d = driver({ base, token, artifacts: env('HP_ARTIFACTS') });
const { step, visit, axe, shot, settled, log } = d;
const api = d.api;


await d.launch();
const { context, page } = await d.newPage();
try {
  await d.logIn(page);

  const row = page.getByRole('row', { name: /^uilxc/ });
  await step('a busybox container is created in the form (a job in the panel)', async () => {
    await visit(page, 'lxc', 'LXC containers');
    await settled(page);
    await page.getByLabel('Container name', { exact: true }).fill('uilxc');
    await page.getByLabel('Template').selectOption('busybox');
    await page.getByLabel('Memory limit (MiB)').fill('64');
    await page.getByRole('button', { name: 'Create LXC container' }).click();
    await page.locator('.jobs li.job', { hasText: 'lxc.create' }).and(page.locator('[data-status=success]')).waitFor({ timeout: 60000 });
    await row.locator('.badge.stopped').waitFor({ timeout: 20000 });
  });

  await step('it starts; its attach console runs a typed command', async () => {
    await page.getByRole('button', { name: 'Start uilxc', exact: true }).click();
    await row.locator('.badge.running').waitFor({ timeout: 30000 });
    await page.getByRole('button', { name: 'Open uilxc' }).click();
    await page.getByRole('button', { name: 'Attach console' }).click();
    await page.getByText('Console of uilxc: connected').waitFor({ timeout: 30000 });
    await page.locator('.xterm-helper-textarea').focus();
    // busybox's shell starts after a moment: type until the output shows.
    for (let i = 0; i < 10; i++) {
      await page.keyboard.type('echo hp-lxc-$((6*7))\n');
      if (await page.locator('.xterm-rows', { hasText: 'hp-lxc-42' }).waitFor({ timeout: 2000 }).then(() => true, () => false)) break;
    }
    await page.locator('.xterm-rows', { hasText: 'hp-lxc-42' }).waitFor({ timeout: 5000 });
    await axe(page, 'LXC container with its console');
    await shot(page, 'lxc-console');
  });

  await step('it stops and is deleted from the list', async () => {
    await page.getByRole('button', { name: 'Stop uilxc', exact: true }).click();
    await row.locator('.badge.stopped').waitFor({ timeout: 30000 });
    await page.getByRole('tab', { name: 'Backup' }).click();
    await page.getByRole('button', { name: 'Back up uilxc' }).waitFor();
    await axe(page, 'LXC backup tab');
    await page.getByRole('button', { name: 'Delete uilxc', exact: true }).click();
    await row.waitFor({ state: 'detached', timeout: 30000 });
    const list = await (await api('/api/v1/lxc')).json();
    if (list.length) throw new Error(`still listed: ${JSON.stringify(list)}`);
  });
  log('LXC done');
} catch (e) {
  d.problems.push(`driver: ${e.message}`);
} finally {
  await context.close();
  await d.close();
}

log(`${d.problems.length} problems`);
for (const p of d.problems) console.log(`PROBLEM: ${p}`);
process.exit(d.problems.length ? 1 : 0);
