// The admin page (/status) in the machine's headless Chromium, driven by playwright-core as an
// operator would use it: `node admin_page.mjs STEP BASE USER PASSWORD [ARGS…]`, one JSON line
// on stdout.
//   add NAME URL          fill in and submit the "add server" form; {done, servers}
//   pairs                 load the page; {pairs} (the users table's text)
//   switch NAME           press the server's disable (or enable) button; {done, servers}
//   delete NAME           press the server's delete button; {done, servers}
import { chromium } from 'playwright-core';

const [step, base, username, password, ...rest] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
try {
  const context = await browser.newContext({ httpCredentials: { username, password } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${base}/status`);
  let out;
  if (step === 'add') {
    const [name, url] = rest;
    await page.fill('#add-server input[name=name]', name);
    await page.fill('#add-server input[name=url]', url);
    await Promise.all([page.waitForNavigation(), page.click('#add-server button[type=submit]')]);
    out = { done: await page.textContent('#done'), servers: await page.textContent('#servers') };
  } else if (step === 'pairs') {
    out = { pairs: await page.textContent('#pairs') };
  } else if (step === 'switch') {
    const [name] = rest;
    const row = page.locator('#servers tr', { hasText: name });
    await Promise.all([page.waitForNavigation(), row.locator('button[name=action]').click()]);
    out = { done: await page.textContent('#done'), servers: await page.textContent('#servers') };
  } else if (step === 'delete') {
    const [name] = rest;
    const row = page.locator('#servers tr', { hasText: name });
    await Promise.all([page.waitForNavigation(), row.locator('button', { hasText: 'delete' }).click()]);
    out = { done: await page.textContent('#done'), servers: await page.textContent('#servers') };
  } else {
    throw new Error(`unknown step ${step}`);
  }
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
