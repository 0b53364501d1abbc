// The three pages in a real browser: Debian's Chromium, driven by
// Playwright, with a fake camera playing a face rendered from a real photo
// (`facepay eval video`). The whole path runs: camera, page, signed
// request, face engine, ledger, and the answer on screen.
//
// scripts/web-test.sh starts the server and sets:
//   FACEPAY_WEB_URL       the server
//   FACEPAY_DEMO_DIR      its data directory (the demo's key files: the
//                         operator's, to add the kiosks the tests pair)
//   FACEPAY_WEB_VIDEOS    the folder of .y4m videos
//   FACEPAY_WEB_ARTEFACTS where the screenshots go

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const URL = process.env.FACEPAY_WEB_URL;
const DEMO = process.env.FACEPAY_DEMO_DIR;
const VIDEOS = process.env.FACEPAY_WEB_VIDEOS;
const ARTEFACTS = process.env.FACEPAY_WEB_ARTEFACTS;
const KIOSK = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const ANSWER_MS = 30_000;

const operatorKey = JSON.parse(readFileSync(join(DEMO, "demo-operator.json"), "utf8")).operator_key;
const DEMO_STORE = "sto_demo_gangnam";
const merchantKey = JSON.parse(readFileSync(join(DEMO, "demo-merchant.json"), "utf8")).api_key;
const browsers = [];

/** A browser whose camera plays `video`; its own profile, so its own storage. */
async function browserWith(video) {
  const browser = await chromium.launch({
    executablePath: process.env.FACEPAY_CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${join(VIDEOS, video)}`,
    ],
  });
  browsers.push(browser);
  return browser;
}

async function pageOf(browser, viewport) {
  const context = await browser.newContext({ viewport, permissions: ["camera"] });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  return page;
}

async function shoot(page, name) {
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: true });
}

/**
 * Waits until `selector` shows `text`; if it never does, the error says what
 * it showed instead, which is the first thing a failed run needs.
 */
async function shows(page, selector, text) {
  try {
    await page.locator(selector, { hasText: text }).waitFor({ timeout: ANSWER_MS });
  } catch (e) {
    const now = await page.locator(selector).innerText({ timeout: 1000 }).catch(() => "(nothing)");
    throw new Error(`${selector} never showed ${text}; it shows "${now}"`, { cause: e });
  }
}

/** The JSON body of a GET of the merchant API, with the demo merchant's key. */
async function merchantGet(path) {
  const response = await fetch(`${URL}${path}`, {
    headers: { authorization: `Bearer ${merchantKey}` },
  });
  assert.equal(response.status, 200, path);
  return response.json();
}

async function merchantPayments() {
  return (await merchantGet("/v1/merchant/payments?limit=100")).payments;
}

/** How many of the merchant's payments are captured, over every page. */
async function capturedCount() {
  let count = 0;
  let cursor = "";
  for (let page = 0; page < 100; page++) {
    const body = await merchantGet(`/v1/merchant/payments?state=captured&limit=100${cursor}`);
    count += body.payments.length;
    if (!body.next_cursor) return count;
    cursor = `&cursor=${encodeURIComponent(body.next_cursor)}`;
  }
  throw new Error("more than 100 pages of captured payments");
}

/** Adds a kiosk to the demo store as an operator would: its id and code. */
async function newTerminal(name, ttlSeconds) {
  const body = { store_id: DEMO_STORE, name: `${name} ${Date.now()}` };
  if (ttlSeconds) body.pairing_code_ttl_s = ttlSeconds;
  const response = await fetch(`${URL}/v1/operator/terminals`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${operatorKey}`,
      "content-type": "application/json",
      "idempotency-key": `web-${name.replaceAll(" ", "-")}-${Date.now()}-${Math.random()}`,
    },
    body: JSON.stringify(body),
  });
  const made = await response.json();
  assert.equal(response.status, 201, JSON.stringify(made));
  return { id: made.terminal.id, code: made.pairing_code };
}

/** Fills the kiosk's pairing screen and presses Pair. */
async function enterCode(page, terminal) {
  await page.getByLabel("Terminal id").fill(terminal.id);
  await page.getByLabel("Pairing code").fill(terminal.code);
  await page.getByRole("button", { name: "Pair" }).click();
}

async function provisionedTerminal(browser, name) {
  const page = await pageOf(browser, KIOSK);
  await page.goto(`${URL}/terminal`);
  await enterCode(page, await newTerminal(name));
  await page.locator("#till").waitFor({ timeout: ANSWER_MS });
  await shows(page, "#status", /Ready|Move|Hold|Face|look/i);
  return page;
}

let obama;
let approvedId;

before(async () => {
  obama = await provisionedTerminal(await browserWith("obama.y4m"), "kiosk obama");
});

after(async () => {
  await Promise.all(browsers.map((b) => b.close()));
});

test("the terminal keeps its key out of reach of scripts", async () => {
  const extractable = await obama.evaluate(() => new Promise((resolve) => {
    const open = indexedDB.open("facepay-terminal", 1);
    open.onsuccess = () => {
      const get = open.result.transaction("keys").objectStore("keys").get("this");
      get.onsuccess = () => resolve(get.result.key.extractable);
    };
  }));
  assert.equal(extractable, false);
});

test("a kiosk pairs with a fresh code; an expired or a used code is refused", async () => {
  const browser = browsers[0];
  const expiring = await newTerminal("kiosk expiring", 1);
  const late = await pageOf(browser, KIOSK);
  await late.goto(`${URL}/terminal`);
  await new Promise((r) => setTimeout(r, 1500));
  await enterCode(late, expiring);
  await shows(late, "#provision-status", "has expired");
  assert.ok(await late.locator("#till").isHidden());
  await shoot(late, "terminal-pairing-expired");

  const fresh = await newTerminal("kiosk fresh");
  const first = await pageOf(browser, KIOSK);
  await first.goto(`${URL}/terminal`);
  await shoot(first, "terminal-pairing-kiosk");
  await enterCode(first, fresh);
  await first.locator("#till").waitFor({ timeout: ANSWER_MS });
  assert.equal(await first.locator("#terminal-name").innerText(), fresh.id);
  const paired = await first.evaluate(() => new Promise((resolve) => {
    const open = indexedDB.open("facepay-terminal", 1);
    open.onsuccess = () => {
      const get = open.result.transaction("keys").objectStore("keys").get("this");
      get.onsuccess = () => resolve({ id: get.result.terminalId, extractable: get.result.key.extractable, type: get.result.key.type });
    };
  }));
  assert.deepEqual(paired, { id: fresh.id, extractable: false, type: "private" });

  // Another kiosk (its own storage) with the same code: used once.
  const second = await pageOf(browser, KIOSK);
  await second.goto(`${URL}/terminal`);
  await enterCode(second, fresh);
  await shows(second, "#provision-status", "used already");
  assert.ok(await second.locator("#till").isHidden());
  await shoot(second, "terminal-pairing-used");
});

test("the pages say which parts of the demo are simulated", async () => {
  const banner = obama.getByTestId("simulated");
  await banner.waitFor({ timeout: ANSWER_MS });
  assert.match(await banner.textContent(), /issuer: simulated_issuer/);
  const response = await fetch(`${URL}/v1/deployment`);
  assert.match(response.headers.get("facepay-simulated") ?? "", /simulated_issuer/);
});

test("a payment survives a lost network and is charged once", async () => {
  const before = (await merchantPayments()).length;
  let dropped = 0;
  await obama.route("**/v1/terminal/payments", async (route) => {
    if (dropped === 0) {
      dropped += 1;
      // The server takes the payment; its answer never arrives.
      await route.fetch();
      await route.abort("connectionreset");
    } else {
      await route.continue();
    }
  });
  await obama.getByLabel("Amount").fill("4500");
  await obama.getByRole("button", { name: "Pay" }).click();
  const receipt = obama.locator("#receipt");
  await receipt.waitFor({ timeout: ANSWER_MS });
  const text = await receipt.innerText();
  assert.match(text, /Approved/);
  assert.match(text, /Points earned\s*\+45/);
  assert.match(text, /\*\*\*-\*\*\*\*-0000/, "the payer's masked phone");
  assert.equal(dropped, 1);
  await obama.unroute("**/v1/terminal/payments");
  await shoot(obama, "terminal-approved-kiosk");
  const after = await merchantPayments();
  assert.equal(after.length, before + 1, "one payment, though sent twice");
  approvedId = after[0].id;
  assert.equal(after[0].state, "captured");
});

test("a risky payment asks for the phone's last digits on a keypad", async () => {
  await obama.getByLabel("Amount").fill("3000");
  const started = Date.now();
  await obama.getByRole("button", { name: "Pay" }).click();
  await obama.locator("#step-up").waitFor({ timeout: ANSWER_MS });
  // From the press of Pay to the answer on screen: the burst's capture
  // (five frames 120 ms apart), the request and the server's work.
  console.log(`pay pressed to answer on screen: ${Date.now() - started} ms`);
  await shoot(obama, "terminal-step-up-kiosk");
  await obama.setViewportSize(PHONE);
  await shoot(obama, "terminal-step-up-phone");
  await obama.setViewportSize(KIOSK);
  for (const digit of "1234") await obama.locator("#keypad").getByRole("button", { name: digit, exact: true }).click();
  await obama.locator("#keypad").getByRole("button", { name: "Confirm" }).click();
  await shows(obama, "#status", "does not match");
  await obama.getByLabel("Last 4 digits of your phone").fill("0000");
  await obama.locator("#step-up-form").getByRole("button", { name: "Confirm", exact: true }).first().click();
  const receipt = obama.locator("#receipt");
  await receipt.waitFor({ timeout: ANSWER_MS });
  assert.match(await receipt.innerText(), /Approved/);
});

test("a cancelled step-up says so, stays on screen and charges nothing", async () => {
  const capturedBefore = await capturedCount();
  await obama.getByLabel("Amount").fill("3000");
  await obama.getByRole("button", { name: "Pay" }).click();
  await obama.locator("#step-up").waitFor({ timeout: ANSWER_MS });
  await obama.locator("#step-up-cancel").click();
  await shows(obama, "#status", "nothing was charged");
  assert.ok(await obama.locator("#step-up").isHidden());
  await obama.waitForTimeout(4000);
  assert.match(await obama.locator("#status").innerText(), /Cancelled: nothing was charged/);
  assert.equal(await capturedCount(), capturedBefore, "nothing captured");
});

test("a declined card says why, and charges nothing", async () => {
  const capturedBefore = await capturedCount();
  const salley = await provisionedTerminal(await browserWith("salley.y4m"), "kiosk salley");
  await salley.getByLabel("Amount").fill("4500");
  await salley.getByRole("button", { name: "Pay" }).click();
  await shows(salley, "#status", "declined by its bank");
  assert.ok(await salley.locator("#receipt").isHidden());
  // The camera's guidance runs every 1.5 s; it must not erase the answer
  // before the cashier has read it.
  await salley.waitForTimeout(4000);
  assert.match(await salley.locator("#status").innerText(), /declined by its bank/);
  assert.equal(await capturedCount(), capturedBefore, "nothing captured");
  await shoot(salley, "terminal-declined-kiosk");
});

test("a shopper signs up in the app, changes cards, and deletes their face", async () => {
  const phone = await pageOf(await browserWith("hanks.y4m"), PHONE);
  await phone.goto(`${URL}/app`);
  await shows(phone, "#selfie-status", "Face the camera");
  await phone.getByLabel("Phone number").fill("+821099990001");
  await phone.getByLabel("PIN (4 to 12 digits)").fill("2468");
  await phone.getByLabel("Card number").fill("4242 4242 4242 4241");
  await phone.getByLabel("Expiry (MM/YY)").fill("12/30");
  await phone.getByLabel("Security code (CVC)").fill("737");
  await phone.getByRole("button", { name: "Sign up" }).click();
  await phone.locator("#enrol-status", { hasText: "Take a selfie first" }).waitFor();
  assert.match(await phone.locator("#enrol-status").innerText(), /card number/);
  await phone.getByRole("button", { name: "Take selfie" }).click();
  await shows(phone, "#selfie-status", "Looks good");
  await phone.getByLabel("Card number").fill("4000 0566 5566 5556");
  assert.equal(await phone.locator("#enrol-status").innerText(), "", "the old complaint is gone");
  await shoot(phone, "app-sign-up-phone");
  await phone.getByRole("button", { name: "Sign up" }).click();
  await phone.locator("#mine").waitFor({ timeout: ANSWER_MS });
  assert.match(await phone.locator("#mine-summary").innerText(), /face enrolled/);
  await shoot(phone, "app-mine-phone");

  // The wallet: a card that expires next month is added, chosen to pay,
  // and the first card removed; the face stays enrolled throughout.
  const cards = phone.locator("#cards .card");
  assert.equal(await cards.count(), 1);
  assert.match(await cards.first().innerText(), /\*\*\*\*5556 .* pays/);
  const next = new Date();
  next.setDate(1);
  next.setMonth(next.getMonth() + 1);
  const mmYy = `${String(next.getMonth() + 1).padStart(2, "0")}/${String(next.getFullYear() % 100).padStart(2, "0")}`;
  await phone.getByLabel("New card's number").fill("5555 5555 5555 4444");
  await phone.getByLabel("New card's expiry, MM/YY").fill(mmYy);
  await phone.getByLabel("New card's CVC").fill("737");
  await phone.getByRole("button", { name: "Add card" }).click();
  await shows(phone, "#mine-status", "The card is added");
  await phone.locator("#cards-notice", { hasText: "****4444 expires" }).waitFor();
  const added = cards.filter({ hasText: "****4444" });
  await added.getByRole("button", { name: "Pay with this card" }).click();
  await shows(phone, "#mine-status", "This card pays from now on");
  assert.match(await added.innerText(), /pays/);
  assert.doesNotMatch(await cards.filter({ hasText: "****5556" }).innerText(), /pays/);
  phone.once("dialog", (d) => d.accept());
  await cards.filter({ hasText: "****5556" }).getByRole("button", { name: "Remove" }).click();
  await shows(phone, "#mine-status", "The card is removed");
  assert.equal(await cards.count(), 1);
  assert.match(await phone.locator("#mine-summary").innerText(), /face enrolled/);
  await shoot(phone, "app-wallet-phone");

  phone.once("dialog", (d) => d.accept());
  await phone.getByRole("button", { name: "Delete my face" }).click();
  await shows(phone, "#mine-status", "Your face is deleted");
  await phone.locator("#mine-summary", { hasText: "no face enrolled" }).waitFor();
  await phone.setViewportSize(KIOSK);
  await shoot(phone, "app-mine-kiosk");
});

test("the merchant refunds from the dashboard and exports today", async () => {
  assert.ok(approvedId, "the approved payment of the first test");
  const page = await pageOf(browsers[0], KIOSK);
  await page.goto(`${URL}/dashboard`);
  await page.getByLabel("Merchant API key").fill(merchantKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  const row = page.locator(`tr[data-payment="${approvedId}"]`);
  await row.waitFor({ timeout: ANSWER_MS });
  await page.locator("#terminals tr").first().waitFor();
  await page.locator("#webhooks tr", { hasText: "None: register one" }).waitFor();
  await shoot(page, "dashboard-kiosk");
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: /Refund/ }).click();
  await shows(page, "#board-status", "Refunded");
  const refunded = (await merchantPayments()).find((p) => p.id === approvedId);
  assert.equal(refunded.state, "refunded");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8");
  assert.match(csv.split("\n")[0], /^id,created_at,terminal_id,state/);
  assert.ok(csv.includes(approvedId));
  await page.setViewportSize(PHONE);
  await shoot(page, "dashboard-phone");
});

test("an operator onboards a merchant in the console; the merchant makes and revokes a key", async () => {
  const stamp = Date.now();
  const console_ = await pageOf(browsers[0], KIOSK);
  await console_.goto(`${URL}/operator`);
  await console_.getByLabel("Operator key").fill(operatorKey);
  await console_.getByRole("button", { name: "Sign in" }).click();
  await console_.locator("#merchants tr").first().waitFor({ timeout: ANSWER_MS });

  await console_.getByLabel("Name", { exact: true }).fill(`Web Cafe ${stamp}`);
  await console_.getByLabel("Legal name").fill(`Web Cafe ${stamp} Ltd`);
  await console_.getByRole("button", { name: "Add the merchant" }).click();
  await shows(console_, "#merchants-status", "Added");
  await console_.locator("#merchant-title", { hasText: `Web Cafe ${stamp}` }).waitFor({ timeout: ANSWER_MS });

  await console_.getByLabel("Store name").fill("Web Cafe Seongsu");
  await console_.getByLabel("Address").fill("1 Seongsu-ro");
  await console_.getByLabel("City").fill("Seoul");
  await console_.getByLabel("Time zone").fill("Mars/Olympus_Mons");
  await console_.getByRole("button", { name: "Open the store" }).click();
  await shows(console_, "#merchant-status", "IANA time zone");
  assert.equal(await console_.locator("#stores tr[data-store]").count(), 0, "a refused store is not half made");
  await console_.getByLabel("Time zone").fill("Asia/Seoul");
  await console_.getByLabel("Opens every day at").fill("08:00");
  await console_.getByLabel("Closes at").fill("22:00");
  await console_.getByRole("button", { name: "Open the store" }).click();
  await console_.locator("#stores tr[data-store]", { hasText: "daily 08:00–22:00" }).waitFor({ timeout: ANSWER_MS });

  await console_.getByLabel("Terminal name").fill("till 1");
  await console_.getByRole("button", { name: "Add the terminal" }).click();
  const row = console_.locator("#terminals tr[data-terminal]");
  await row.waitFor({ timeout: ANSWER_MS });
  assert.match(await row.innerText(), /waiting to pair/);
  const terminal = { id: await row.getAttribute("data-terminal"), code: await console_.locator("#secret-value").inputValue() };
  assert.ok(terminal.code.length >= 6, terminal.code);
  await shoot(console_, "operator-console-kiosk");

  const kiosk = await pageOf(browsers[0], KIOSK);
  await kiosk.goto(`${URL}/terminal`);
  await enterCode(kiosk, terminal);
  await kiosk.locator("#till").waitFor({ timeout: ANSWER_MS });
  await console_.getByRole("button", { name: `Manage Web Cafe ${stamp}` }).click();
  await console_.locator("#terminals tr[data-terminal]", { hasText: "active" }).waitFor({ timeout: ANSWER_MS });

  await console_.getByRole("button", { name: "Make an admin key for this merchant" }).click();
  await shows(console_, "#merchant-status", "Key made");
  const adminKey = await console_.locator("#secret-value").inputValue();

  const dashboard = await pageOf(browsers[0], KIOSK);
  await dashboard.goto(`${URL}/dashboard`);
  await dashboard.getByLabel("Merchant API key").fill(adminKey);
  await dashboard.getByRole("button", { name: "Sign in" }).click();
  await dashboard.locator("#keys tr[data-key]", { hasText: "first admin key" }).waitFor({ timeout: ANSWER_MS });
  await dashboard.getByLabel("New key's label").fill("till reader");
  await dashboard.getByLabel("Scope").selectOption("read");
  await dashboard.getByRole("button", { name: "Make a key" }).click();
  await shows(dashboard, "#keys-status", "Key made");
  const readKey = await dashboard.locator("#new-key-secret").inputValue();
  const asReader = (path) => fetch(`${URL}${path}`, { headers: { authorization: `Bearer ${readKey}` } });
  assert.equal((await asReader("/v1/merchant/payments")).status, 200);
  assert.equal((await asReader("/v1/merchant/keys")).status, 403, "a read key does not see keys");
  await shoot(dashboard, "dashboard-keys-kiosk");
  dashboard.once("dialog", (d) => d.accept());
  await dashboard.getByRole("button", { name: "Revoke till reader" }).click();
  await shows(dashboard, "#keys-status", "Revoked");
  const refused = await asReader("/v1/merchant/payments");
  assert.equal(refused.status, 401);
  assert.equal((await refused.json()).error.code, "key_revoked");
});
