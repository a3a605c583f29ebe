// Drives Debian's Chromium (playwright-core) over the Network page against a daemon that runs in
// a throwaway network namespace; this process and its Chromium run in that same namespace
// (`ip netns exec`, started by crates/hostplane/tests/web_ui_pages.rs, test
// `network_dhcp_and_host_settings_confirm_in_chromium`), so the browser reaches the daemon's
// loopback listener there and nothing it does touches the host's network:
//   HP_URL, HP_USER/HP_PASS (an admin's login), HP_TOKEN (an API token of that admin),
//   HP_PORT (a veth in the namespace to put into the bridge), HP_HOSTIF (the veth whose host
//   settings change), HP_ARTIFACTS.
// A bridge with a port and an address are made on the Interfaces tab; a DHCP server on that
// bridge and a static host on the DHCP tab; on the Host settings tab a static address is
// applied, the countdown shows, and Confirm keeps the change before its deadline. Fails
// (exit 1) on a step that does not happen, an axe violation, a page error, a CSP violation or a
// request elsewhere.
import { driver, env } from './lib.mjs';

const base = env('HP_URL');
const token = env('HP_TOKEN');
const port = env('HP_PORT');
const hostIf = env('HP_HOSTIF');
const d = driver({ base, token, artifacts: env('HP_ARTIFACTS') });
const { step, visit, axe, shot, settled, log } = d;
const api = d.api;
const tab = (page, name) => d.tab(page, name);


await d.launch();
const { context, page } = await d.newPage();
try {
  await d.logIn(page);

  await step('a bridge with a port and an address are made on the Interfaces tab', async () => {
    await visit(page, 'network', 'Network');
    await settled(page);
    await page.getByLabel('Bridge name').fill('hpubr');
    await page.getByLabel('Ports (space separated)').fill(port);
    await page.getByRole('button', { name: 'Create bridge' }).click();
    await page.getByRole('button', { name: 'Delete bridge hpubr' }).waitFor();
    await page.getByLabel('Interface', { exact: true }).fill('hpubr');
    await page.getByLabel('Address (CIDR)', { exact: true }).fill('10.77.0.1/24');
    await page.getByRole('button', { name: 'Add address' }).click();
    await page.getByRole('button', { name: 'Remove address 10.77.0.1/24' }).waitFor();
  });

  await step('a DHCP server on the bridge and a static host are added on the DHCP tab', async () => {
    await tab(page, 'DHCP');
    await page.getByLabel('Bridge', { exact: true }).fill('hpubr');
    await page.getByLabel('Range start').fill('10.77.0.100');
    await page.getByLabel('Range end').fill('10.77.0.150');
    await page.getByLabel('Router').fill('10.77.0.1');
    await page.getByLabel('Lease time (s)').fill('600');
    await page.getByRole('button', { name: 'Add DHCP server' }).click();
    const card = page.locator('.card', { has: page.getByRole('heading', { name: /^hpubr/ }) });
    await card.locator('.badge', { hasText: 'running' }).waitFor();
    await card.getByLabel('MAC').fill('02:00:00:00:77:01');
    await card.getByLabel('Address', { exact: true }).fill('10.77.0.77');
    await card.getByLabel('Host name').fill('uihost');
    await card.getByRole('button', { name: 'Add static host' }).click();
    await card.getByRole('rowheader', { name: '02:00:00:00:77:01' }).waitFor();
    await card.getByRole('cell', { name: 'uihost' }).waitFor();
    await axe(page, 'DHCP server with a static host');
    await shot(page, 'network-dhcp-server');
    const s = await (await api('/api/v1/network/dhcp-servers/hpubr')).json();
    if (s.state !== 'running' || s.hosts?.[0]?.ip !== '10.77.0.77') throw new Error(`DHCP server: ${JSON.stringify(s)}`);
  });

  await step('host settings: a static address applied, the countdown shown, Confirm keeps it', async () => {
    await tab(page, 'Host settings');
    await page.getByLabel('Interface', { exact: true }).fill(hostIf);
    await page.getByLabel('Mode').selectOption('static');
    await page.getByLabel('Address (CIDR, static)').fill('192.0.2.20/24');
    await page.getByLabel('Gateway (static)').fill('');
    await page.getByLabel('DNS servers').fill('192.0.2.53');
    await page.getByLabel('Host name').fill('hp-ui.example');
    await page.getByLabel('Confirmation window (s)').fill('60');
    await page.getByRole('button', { name: 'Apply host settings' }).click();
    const timer = page.getByRole('timer');
    await timer.waitFor({ timeout: 30000 });
    const left = Number((await timer.textContent()).match(/(\d+) s/)[1]);
    log(`awaiting confirmation, ${left} s left`);
    if (!(left > 0 && left <= 60)) throw new Error(`countdown: ${left}`);
    await axe(page, 'host settings change awaiting confirmation');
    await shot(page, 'network-host-confirm');
    const t = Date.now();
    await page.getByRole('button', { name: 'Confirm', exact: true }).click();
    await page.getByText('Host settings confirmed.').waitFor({ timeout: 45000 });
    log(`confirmed ${((Date.now() - t) / 1000).toFixed(1)} s after Confirm`);
    await page.locator('.badge.confirmed').waitFor();
    await page.getByRole('button', { name: 'Close', exact: true }).click();
    await page.getByRole('button', { name: 'Apply host settings' }).waitFor();
    const h = await (await api('/api/v1/network/host')).json();
    if (h.settings?.address !== '192.0.2.20/24' || h.pending_change) throw new Error(`host settings: ${JSON.stringify(h)}`);
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
