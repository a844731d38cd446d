// Headless Chromium for the browser tests, driven by playwright-core and controlled from Python over JSON lines:
// each line on stdin is {"id", "method", "params"}; each answer on stdout is {"id", "result"} or {"id", "error"}.
// One page at a time (newPage replaces it). tests/e2e/browser.py is the Python side.
//
//   node browser.mjs [--executable /usr/bin/chromium]

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const executablePath = args.includes("--executable") ? args[args.indexOf("--executable") + 1] : "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    // Playback starts without a click after a reload, as it does for a viewer who has used the site.
    "--autoplay-policy=no-user-gesture-required",
  ],
});

let context = null;
let page = null;
const consoleLines = [];

async function newPage({ width = 1280, height = 720 } = {}) {
  if (context) await context.close();
  context = await browser.newContext({ viewport: { width, height }, screen: { width, height }, locale: "en-US" });
  page = await context.newPage();
  consoleLines.length = 0;
  page.on("console", (msg) => {
    const where = msg.location()?.url;
    consoleLines.push(`${msg.type()}: ${msg.text()}${where ? ` (${where})` : ""}`);
  });
  page.on("pageerror", (err) => consoleLines.push(`pageerror: ${err.message}`));
  return true;
}

function current() {
  if (!page) throw new Error("no page: call newPage first");
  return page;
}

const methods = {
  newPage,
  goto: async ({ url }) => (await current().goto(url, { waitUntil: "domcontentloaded" }))?.status() ?? null,
  setOffline: async ({ offline }) => context.setOffline(offline),
  reload: async () => (await current().reload({ waitUntil: "domcontentloaded" }))?.status() ?? null,
  url: async () => current().url(),
  setContent: async ({ html }) => current().setContent(html),
  addScript: async ({ path }) => {
    await current().addScriptTag({ path });
    return true;
  },
  click: async ({ selector, timeout = 10_000 }) => current().locator(selector).first().click({ timeout }),
  fill: async ({ selector, text, timeout = 10_000 }) => current().locator(selector).first().fill(text, { timeout }),
  // Key by key, as a person types (search as you type).
  type: async ({ selector, text, delay = 80 }) => current().locator(selector).first().pressSequentially(text, { delay }),
  press: async ({ selector, key }) => current().locator(selector).first().press(key),
  keyboard: async ({ key }) => current().keyboard.press(key),
  waitFor: async ({ selector, state = "visible", timeout = 10_000 }) =>
    current().locator(selector).first().waitFor({ state, timeout }),
  count: async ({ selector }) => current().locator(selector).count(),
  text: async ({ selector }) => current().locator(selector).first().textContent(),
  texts: async ({ selector }) => current().locator(selector).allTextContents(),
  attribute: async ({ selector, name }) => current().locator(selector).first().getAttribute(name),
  // An expression evaluated in the page (it may be async); its JSON-serialisable value comes back.
  evaluate: async ({ expression }) => current().evaluate(expression),
  waitForFunction: async ({ expression, timeout = 10_000, polling = 100 }) =>
    (await current().waitForFunction(expression, null, { timeout, polling })).jsonValue(),
  screenshot: async ({ path, fullPage = false }) => {
    await current().screenshot({ path, fullPage });
    return path;
  },
  console: async () => consoleLines.splice(0),
  close: async () => {
    await browser.close();
    setImmediate(() => process.exit(0));
    return true;
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let id = null;
  try {
    const request = JSON.parse(line);
    id = request.id;
    const method = methods[request.method];
    if (!method) throw new Error(`unknown method ${request.method}`);
    const result = await method(request.params ?? {});
    process.stdout.write(JSON.stringify({ id, result: result ?? null }) + "\n");
  } catch (err) {
    process.stdout.write(JSON.stringify({ id, error: String(err?.message ?? err) }) + "\n");
  }
}
await browser.close();
