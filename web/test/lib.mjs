// Shared pieces of the browser drivers: Chromium (Debian's, playwright-core), pages that record
// page errors, CSP violations and requests to another origin, axe (wcag2a/aa), screenshots,
// navigation by the main menu, tabs, the API with the run's token, the login step and named
// steps that record failures instead of stopping.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export const env = (k) => process.env[k] ?? (() => { throw new Error(`${k} is not set`); })();

export function driver({ base, artifacts, token }) {
  const origin = new URL(base).origin;
  const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
  const problems = [];
  const t0 = Date.now();
  const log = (msg) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
  let browser;
  return {
    problems,
    log,
    async launch() {
      browser = await chromium.launch({
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
      });
    },
    async close() {
      await browser?.close();
    },
    async newPage() {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const page = await context.newPage();
      page.setDefaultTimeout(20000);
      page.on('request', (r) => {
        const u = r.url();
        if (!u.startsWith(origin + '/') && !u.startsWith('data:') && !u.startsWith(origin.replace('http', 'ws') + '/')) {
          problems.push(`request to another origin: ${u}`);
        }
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) problems.push(`CSP violation: ${m.text()}`);
      });
      return { context, page };
    },
    async axe(page, name) {
      await page.evaluate(axeSource);
      const result = await page.evaluate(() =>
        // eslint-disable-next-line no-undef
        axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }),
      );
      for (const v of result.violations) {
        problems.push(`axe ${name}: ${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`);
      }
      log(`axe ${name}: ${result.violations.length} violations, ${result.passes.length} rules passed`);
    },
    async shot(page, name) {
      await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
    },
    async visit(page, route, heading) {
      await page.getByRole('navigation').getByRole('link', { name: heading, exact: true }).click();
      await page.waitForURL(`**/#/${route}`);
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
    },
    /** The page's data (a table) or what it says instead, and no "Loading…" left. */
    async settled(page) {
      await page.locator('main table, main p.muted, main dl').first().waitFor();
      await page.waitForFunction(() => !document.querySelector('main')?.textContent?.includes('Loading…'), null, { timeout: 15000 }).catch(() => {});
    },
    /** The API with the run's token (`token` given to `driver`). */
    api(p, init = {}) {
      return fetch(`${base}${p}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(init.headers ?? {}) } });
    },
    async tab(page, name) {
      await page.getByRole('tab', { name }).click();
      await this.settled(page);
    },
    /** The step that logs in as HP_USER/HP_PASS and waits for the dashboard. */
    async logIn(page) {
      await this.step('log in', async () => {
        await page.goto(base + '/');
        await page.getByLabel('Username', { exact: true }).fill(env('HP_USER'));
        await page.getByLabel('Password', { exact: true }).fill(env('HP_PASS'));
        await page.getByRole('button', { name: 'Log in' }).click();
        await page.getByRole('heading', { level: 1, name: 'Dashboard' }).waitFor();
      });
    },
    async step(name, f) {
      const t = Date.now();
      try {
        await f();
        log(`ok: ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`);
      } catch (e) {
        problems.push(`${name}: ${e.message.split('\n')[0]}`);
        log(`FAILED: ${name}: ${e.message}`);
      }
    },
  };
}
