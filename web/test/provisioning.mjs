// Drives Debian's Chromium (playwright-core) over the Provisioning page against a running daemon
// (started by crates/hostplane/tests/web_ui_pages.rs, test `provisioning_pages_in_chromium`):
//   HP_URL, HP_USER/HP_PASS (an admin's login), HP_TOKEN (an API token of that admin),
//   HP_VM (a stopped VM's id: the test guest booted with `mode=login`), HP_GUEST_PASSWORD (its root
//   password, stored as the profile's secret), HP_ARTIFACTS.
// Every tab renders and passes axe (light and dark); the shipped recipe's dry run shows the
// substituted steps and the unresolved variables; a recipe made in the step editor is created,
// then edited (a step added, one moved); a secret is stored; two artifacts are uploaded (the
// progress bar shows) and one deleted; a profile is created (the test guest's recipe, a
// credential, an artifact, a shell provisioner that fails until fixed); from the VM's page a
// run is started: its view follows the steps live (the guest boots under TCG), shows the failed
// provisioner's exit code and log; the profile is fixed in the UI and Retry resumes at that step
// and succeeds; a template registry (a small BoxVault served here) is added, browsed, a box
// pulled into a template (a job), and removed. Fails (exit 1) on a step that does not happen, an axe
// violation, a page error, a CSP violation or a request elsewhere.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { driver, env } from './lib.mjs';

/** A small BoxVault on loopback (the shape tests/template_registries.rs serves): one
 *  organisation, one box, one version whose libvirt box is a 2 MiB qcow2 (qemu-img), sha256. */
async function boxvault() {
  const dir = mkdtempSync(path.join(tmpdir(), 'hp-ui-box-'));
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'box.img'), '2M']);
  writeFileSync(path.join(dir, 'metadata.json'), '{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}');
  execFileSync('tar', ['-C', dir, '-czf', path.join(dir, 'tiny.box'), 'metadata.json', 'box.img']);
  const box = readFileSync(path.join(dir, 'tiny.box'));
  rmSync(dir, { recursive: true, force: true });
  const sha = createHash('sha256').update(box).digest('hex');
  let token = false;
  const server = createServer((req, res) => {
    if (req.headers['x-access-token'] === 'tok-123') token = true;
    const url = `http://127.0.0.1:${server.address().port}`;
    const routes = {
      '/api/organization': [{ name: 'STARTcloud', description: 'the test organisation' }],
      '/api/organization/STARTcloud/box': [{ name: 'tiny', description: 'a 2 MiB disk' }],
      '/api/organization/STARTcloud/box/tiny/metadata': {
        name: 'tiny',
        versions: [{ version: '0.0.9', providers: [{ name: 'libvirt', url: `${url}/files/tiny.box`, checksum_type: 'sha256', checksum: sha, architecture: 'amd64', default_architecture: true }] }],
      },
    };
    const p = req.url.split('?')[0];
    if (p === '/files/tiny.box') return res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': box.length }).end(box);
    if (routes[p]) return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(routes[p]));
    res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, tokenSeen: () => token, close: () => server.close() };
}

const base = env('HP_URL');
const token = env('HP_TOKEN');
const vm = env('HP_VM');
const d = driver({ base, token, artifacts: env('HP_ARTIFACTS') });
const { step, visit, axe, shot, settled, log } = d;
const api = d.api;
const tab = (page, name) => d.tab(page, name);


await d.launch();
const { context, page } = await d.newPage();
try {
  await d.logIn(page);

  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await step(`every Provisioning tab renders and passes axe (${scheme})`, async () => {
      await visit(page, 'provisioning', 'Provisioning');
      for (const t of ['Recipes', 'Profiles', 'Artifacts and secrets', 'Runs', 'Template registries']) {
        await tab(page, t);
        await axe(page, `provisioning ${t} (${scheme})`);
        if (scheme === 'light') await shot(page, `provisioning-${t.split(' ')[0].toLowerCase()}`);
      }
    });
  }
  await page.emulateMedia({ colorScheme: 'light' });

  await step("the shipped recipe's dry run shows the substituted steps and what is unresolved", async () => {
    await visit(page, 'provisioning', 'Provisioning');
    await tab(page, 'Recipes');
    await page.getByRole('button', { name: 'View recipe test-guest' }).click();
    await page.getByRole('heading', { name: 'Recipe test-guest' }).waitFor();
    await page.getByRole('button', { name: 'Render' }).click();
    const out = page.locator('[data-render]');
    await out.waitFor();
    log(`dry run without variables: ${(await out.locator('p').textContent()).trim()}`);
    await axe(page, 'recipe view with a dry run');
    await shot(page, 'provisioning-render');
  });

  await step('a recipe made in the step editor is created, then edited', async () => {
    await page.getByRole('button', { name: 'New recipe' }).click();
    await page.getByLabel('Recipe name').fill('ui-recipe');
    await page.getByLabel('OS family').fill('linux');
    await page.getByLabel('Variables (name=default lines; name= for none)').fill('greeting=hello\npw=');
    await page.getByLabel('Secret variables (names)').fill('pw');
    await page.getByLabel('Step 1 pattern').fill('login:');
    await page.getByLabel('Step 1 timeout (s)').fill('30');
    await page.getByRole('button', { name: 'Add step' }).click();
    await page.getByLabel('Step 2 command').fill('echo {{greeting}} {{pw}}');
    await page.getByLabel('Step 2 exit codes').fill('0 1');
    await axe(page, 'recipe editor');
    await shot(page, 'provisioning-recipe-editor');
    await page.getByRole('button', { name: 'Create recipe' }).click();
    await page.getByRole('rowheader', { name: 'ui-recipe', exact: true }).waitFor();
    // Edit: a delay step, moved to the front.
    await page.getByRole('button', { name: 'Edit recipe ui-recipe' }).click();
    await page.getByRole('button', { name: 'Add step' }).click();
    await page.getByLabel('Step 3 type').selectOption('delay');
    await page.getByLabel('Step 3 milliseconds').fill('250');
    await page.getByRole('button', { name: 'Move step 3 up' }).click();
    await page.getByRole('button', { name: 'Move step 2 up' }).click();
    await page.getByRole('button', { name: 'Save recipe' }).click();
    await page.getByText('Recipe ui-recipe saved.').waitFor();
    const r = await (await api('/api/v1/provisioning/recipes/ui-recipe')).json();
    const types = r.steps.map((s) => s.type).join(',');
    if (types !== 'delay,wait,command') throw new Error(`steps after the edit: ${JSON.stringify(r.steps)}`);
    if (!r.variables.some((v) => v.name === 'pw' && v.secret)) throw new Error(`variables: ${JSON.stringify(r.variables)}`);
    // Its dry run: greeting substituted, pw unresolved.
    await page.getByRole('button', { name: 'View recipe ui-recipe' }).click();
    await page.getByRole('button', { name: 'Render' }).click();
    await page.locator('[data-render]', { hasText: 'Unresolved: pw' }).waitFor();
    await page.locator('[data-render] li', { hasText: 'run "echo hello ' }).waitFor();
  });

  await step('a secret is stored; two artifacts are uploaded with progress, one deleted', async () => {
    await tab(page, 'Artifacts and secrets');
    await page.getByLabel('Secret name').fill('ui-pw');
    // The test guest's root password: its `mode=login` console asks for it.
    await page.getByLabel('Value', { exact: true }).fill(process.env.HP_GUEST_PASSWORD);
    await page.getByRole('button', { name: 'Store secret' }).click();
    await page.getByRole('rowheader', { name: 'ui-pw', exact: true }).waitFor();
    for (const [name, size] of [['ui-big', 8 * 1024 * 1024], ['ui-extra', 1000]]) {
      await page.getByLabel('File', { exact: true }).setInputFiles({ name: `${name}.bin`, mimeType: 'application/octet-stream', buffer: Buffer.alloc(size, 7) });
      await page.getByLabel("Artifact name (empty: the file's)").fill(name);
      await page.getByRole('button', { name: 'Upload artifact' }).click();
      if (size > 1000000) await page.locator('progress[aria-label^="Upload"]').waitFor({ timeout: 5000 }).then(() => log('upload progress bar seen'), () => log('(the upload finished before its progress bar was seen)'));
      await page.getByRole('rowheader', { name, exact: true }).waitFor({ timeout: 30000 });
    }
    await page.getByRole('button', { name: 'Delete artifact ui-big' }).click();
    await page.getByRole('rowheader', { name: 'ui-big', exact: true }).waitFor({ state: 'detached' });
    const list = await (await api('/api/v1/provisioning/artifacts')).json();
    if (list.length !== 1 || list[0].name !== 'ui-extra' || list[0].size_bytes !== 1000) throw new Error(`artifacts: ${JSON.stringify(list)}`);
    await axe(page, 'artifacts and secrets');
  });

  // The test guest's shipped recipe; a provisioner that fails until the profile is fixed.
  const provisioners = (fixed) => `shell check\n  echo hp-prov-$((6*7))\n${fixed ? '  touch /tmp/fixed\n' : ''}  test -f /tmp/fixed`;
  await step('a profile is created', async () => {
    await tab(page, 'Profiles');
    await page.getByRole('button', { name: 'New profile' }).click();
    await page.getByLabel('Profile name').fill('ui-profile');
    await page.locator('select[name=recipe]').selectOption('test-guest');
    await page.getByLabel('Username').fill('root');
    await page.getByLabel('Password secret').selectOption('ui-pw');
    await page.getByLabel('Variables (KEY=value lines)').fill('ui_note=from-profile');
    await page.getByLabel('Artifacts to place (lines: artifact /path/in/guest [mode])').fill('ui-extra /tmp/extra.bin 0644');
    await page.getByLabel(/^Provisioners/).fill(provisioners(false));
    await axe(page, 'profile editor');
    await page.getByRole('button', { name: 'Create profile' }).click();
    await page.getByRole('rowheader', { name: 'ui-profile', exact: true }).waitFor();
    const p = await (await api('/api/v1/provisioning/profiles/ui-profile')).json();
    if (p.provisioners?.[0]?.inline?.join('|') !== 'echo hp-prov-$((6*7))|test -f /tmp/fixed' || p.credential?.secret !== 'ui-pw' || p.artifacts?.[0]?.dest !== '/tmp/extra.bin') {
      throw new Error(`profile: ${JSON.stringify(p)}`);
    }
  });

  await step("a run started from the VM's page boots the guest and fails at its provisioner, live; fixed, Retry resumes there and succeeds", async () => {
    await page.goto(`${base}/#/vms/${vm}`);
    await page.getByRole('link', { name: 'Provision this VM' }).click();
    await page.getByRole('heading', { name: 'Start a run' }).waitFor();
    await page.locator('select[name=profile]').selectOption('ui-profile');
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL('**/#/provisioning/runs/*');
    const run = page.locator('section[data-run]');
    // Live: the boot step turns to success while the run goes on (job events, no reload).
    await page.getByRole('row', { name: /^boot/ }).locator('.badge.success').waitFor({ timeout: 60000 });
    await run.and(page.locator('[data-status=running]')).waitFor({ timeout: 1000 }).catch(() => log('(the run was past running when first seen)'));
    await run.and(page.locator('[data-status=failed]')).waitFor({ timeout: 120000 });
    const failed = page.getByRole('row', { name: /^provisioner:1:check/ });
    await failed.locator('.badge.failed').waitFor();
    const cells = await failed.locator('td').allTextContents();
    log(`failed step: ${cells.join(' | ')}`);
    if (cells[1] !== '1') throw new Error(`exit code of the failed step: ${cells.join(' | ')}`);
    for (const s of ['setup', 'wait_ready', 'artifacts']) await page.getByRole('row', { name: new RegExp(`^${s}`) }).locator('.badge.success').waitFor();
    await page.getByLabel('Log of provisioner:1:check').filter({ hasText: 'hp-prov-42' }).waitFor();
    await axe(page, 'a failed run');
    await shot(page, 'provisioning-run-failed');
    // Fix the profile in the UI, then Retry: a second attempt from the failed step.
    const id = await run.getAttribute('data-run');
    await page.getByRole('link', { name: 'Provisioning', exact: true }).first().click();
    await tab(page, 'Profiles');
    await page.getByRole('button', { name: 'Edit profile ui-profile' }).click();
    await page.getByLabel(/^Provisioners/).fill(provisioners(true));
    await page.getByRole('button', { name: 'Save profile' }).click();
    await page.getByText('Profile ui-profile saved.').waitFor();
    await tab(page, 'Runs');
    await page.getByRole('link', { name: id, exact: true }).click();
    await page.getByRole('button', { name: 'Retry from provisioner:1:check' }).click();
    await run.and(page.locator('[data-status=success]')).waitFor({ timeout: 120000 });
    await page.getByRole('row', { name: /^provisioner:1:check/ }).locator('.badge.success').waitFor();
    await shot(page, 'provisioning-run');
    const r = await (await api(`/api/v1/provisioning/runs/${id}`)).json();
    if (r.attempts !== 2 || r.status !== 'success') throw new Error(`run: ${JSON.stringify(r)}`);
  });

  await step('a template registry is added, browsed (organisations, boxes, versions) and a box pulled into a template; removed', async () => {
    const reg = await boxvault();
    try {
      await visit(page, 'provisioning', 'Provisioning');
      await tab(page, 'Template registries');
      await page.getByLabel('Registry name').fill('ui-boxes');
      await page.getByLabel('Base URL').fill(reg.url);
      await page.getByLabel('API token (optional)').fill('tok-123');
      await page.getByRole('button', { name: 'Add registry' }).click();
      await page.getByText('Registry ui-boxes added.').waitFor();
      const row = page.getByRole('row', { name: /ui-boxes/ });
      await row.getByText('stored').waitFor();
      await page.getByRole('button', { name: 'Browse ui-boxes' }).click();
      await page.getByRole('button', { name: 'STARTcloud' }).click();
      await page.getByRole('button', { name: 'tiny', exact: true }).click();
      await page.getByRole('rowheader', { name: '0.0.9' }).waitFor();
      await axe(page, 'template registry browsed');
      await shot(page, 'provisioning-registry');
      await page.getByLabel('Template name for 0.0.9').fill('ui-tiny');
      await page.getByRole('button', { name: 'Pull tiny 0.0.9' }).click();
      await page.locator('.jobs li.job', { hasText: 'vms.template_pull' }).and(page.locator('[data-status=success]')).waitFor({ timeout: 60000 });
      if (!reg.tokenSeen()) throw new Error('the registry never got the token');
      await page.getByRole('button', { name: 'Remove registry ui-boxes' }).click();
      await row.waitFor({ state: 'detached' });
    } finally {
      reg.close();
    }
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
