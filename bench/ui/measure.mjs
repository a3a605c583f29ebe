// bench/ui/run's browser side: navigation to / → login form usable → logged in → dashboard
// rendered, cold (new context) and warm (assets cached), BENCH_ROUNDS each; medians and p90.
import { createRequire } from 'node:module';
import path from 'node:path';

// playwright-core from web/node_modules (bench/ui/run starts this in web/).
const { chromium } = createRequire(path.join(process.cwd(), 'package.json'))('playwright-core');

const base = process.env.HP_URL;
const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
});

async function once(page) {
  page.setDefaultTimeout(60000);
  const t0 = performance.now();
  await page.goto(base + '/', { waitUntil: 'commit' });
  await page.getByLabel('Username', { exact: true }).waitFor();
  const login = performance.now() - t0;
  const dcl = await page.evaluate(() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd);
  await page.getByLabel('Username', { exact: true }).fill(process.env.HP_USER);
  await page.getByLabel('Password', { exact: true }).fill(process.env.HP_PASS);
  const t1 = performance.now();
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor().catch(async (e) => {
    console.error((await page.locator('body').innerText()).slice(0, 400));
    throw e;
  });
  await page.getByText('CPUs').waitFor();
  const dash = performance.now() - t1;
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByLabel('Username', { exact: true }).waitFor();
  return { login, dcl, dash, total: login + dash };
}

const stat = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { med: s[Math.floor(s.length / 2)], p90: s[Math.min(s.length - 1, Math.floor(s.length * 0.9))] };
};

const cold = [];
const warm = [];
// One unmeasured round: Chromium's own start-up is not the UI's.
{
  const c = await browser.newContext();
  await once(await c.newPage());
  await c.close();
}
for (let i = 0; i < rounds; i++) {
  const c = await browser.newContext();
  const page = await c.newPage();
  cold.push(await once(page));
  warm.push(await once(page));
  await c.close();
}
await browser.close();

const row = (name, list) => {
  const f = (k) => {
    const { med, p90 } = stat(list.map((r) => r[k]));
    return `${med.toFixed(0)} / ${p90.toFixed(0)}`;
  };
  return `| ${name} | ${f('dcl')} | ${f('login')} | ${f('dash')} | ${f('total')} |`;
};
console.log(`${rounds} rounds, milliseconds, median / p90:`);
console.log('');
console.log('| cache | DOMContentLoaded of / | navigation → login form usable | Log in click → dashboard rendered | sum |');
console.log('|---|---|---|---|---|');
console.log(row('cold (new context)', cold));
console.log(row('warm (assets cached)', warm));
