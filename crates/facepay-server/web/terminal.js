// The kiosk: pairing with the operator's one-time code (the terminal makes
// its own Ed25519 key as a non-extractable WebCrypto key, kept in
// IndexedDB, and registers the public half), then amount, camera, a signed
// burst, and the answer: approved, a step-up keypad, or the reason it was
// not.

import {
  Answer, NetworkError, burst, call, el, grab, guidance, money, newKey, openCamera,
  quality, say,
} from "/web/lib.js";

/** A lost network is retried this often, with the same idempotency key. */
const RETRIES_MAX = 5;
const RETRY_GAP_MS = 1000;
/** How often the idle screen asks the face engine for guidance. */
const GUIDE_EVERY_MS = 1500;
/**
 * A payment's answer stays on screen this long, or until the cashier types
 * the next amount: guidance must not erase a decline before anyone reads it.
 */
const ANSWER_HOLD_MS = 20_000;

const $ = (id) => document.getElementById(id);
let terminal = null; // { terminalId, key }
let busy = false;
let answerHeldUntil = 0; // a time in ms; guidance waits until then

// IndexedDB holds the CryptoKey itself: the browser keeps the private key
// and signs with it, and no script can read it back.
function database() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("facepay-terminal", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onsuccess = () => resolve(open.result);
    open.onerror = () => reject(open.error);
  });
}

async function stored(mode, action) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const request = action(db.transaction("keys", mode).objectStore("keys"));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

const toHex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
const toBase64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

const PAIRING_ERRORS = {
  pairing_code_invalid: "That code does not pair this terminal. Check the terminal id and the code.",
  pairing_code_expired: "That code has expired. Ask your operator for a new one.",
  pairing_code_used: "That code was used already. Ask your operator for a new one.",
  pairing_throttled: "Too many wrong codes. Wait a minute, or ask your operator for a new code.",
  terminal_retired: "This terminal is retired and cannot be paired.",
};

/**
 * Makes this terminal's key in the browser (the private half can never be
 * read out, not even by this script) and registers the public half with
 * the one-time code; keeps the key only once the server took it.
 */
async function pair(terminalId, code) {
  const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign"]);
  const publicKey = toHex(await crypto.subtle.exportKey("raw", keys.publicKey));
  const body = JSON.stringify({ terminal_id: terminalId, code, public_key_hex: publicKey });
  const answer = await call("POST", "/v1/terminals/pair", { body });
  if (answer.status !== 200) {
    throw new Error(PAIRING_ERRORS[answer.code] ?? answer.message);
  }
  const record = { terminalId, key: keys.privateKey, currency: answer.body.currency };
  await stored("readwrite", (s) => s.put(record, "this"));
  return record;
}

/** The four signature headers over method, path, time, nonce and body hash. */
async function signed(method, path, body, idempotencyKey) {
  const timestamp = String(Date.now());
  const nonce = toHex(crypto.getRandomValues(new Uint8Array(16)));
  const digest = toHex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
  const message = `${method}\n${path}\n${timestamp}\n${nonce}\n${digest}`;
  const signature = await crypto.subtle.sign(
    { name: "Ed25519" }, terminal.key, new TextEncoder().encode(message),
  );
  return {
    "x-facepay-terminal": terminal.terminalId,
    "x-facepay-timestamp": timestamp,
    "x-facepay-nonce": nonce,
    "x-facepay-signature": toBase64(signature),
    "idempotency-key": idempotencyKey,
  };
}

/**
 * Sends a signed request, and again with the same idempotency key while the
 * network is down or the first try is still running on the server: the
 * server answers a repeat with the first answer, so nothing is paid twice.
 */
async function send(method, path, body, idempotencyKey) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      const headers = await signed(method, path, body, idempotencyKey);
      const answer = await call(method, path, { headers, body });
      if (answer.code !== "idempotency_in_progress" || attempt >= RETRIES_MAX) return answer;
    } catch (e) {
      if (!(e instanceof NetworkError) || attempt >= RETRIES_MAX) {
        return new Answer(0, { error: { code: "network", message: "The network is down: the payment was not confirmed. Check the connection; paying again is safe." } });
      }
      say($("status"), `Network lost: trying again (${attempt} of ${RETRIES_MAX - 1})…`, "wait");
    }
    await new Promise((r) => setTimeout(r, RETRY_GAP_MS * attempt));
  }
}

const DECLINES = {
  face_not_recognised: "We don't recognise this face. Enrol in the facepay app, or pay another way.",
  liveness_failed: "We could not confirm a live person in front of the camera. Please try again.",
  risk_declined: "This payment was refused by our fraud checks. Please pay another way.",
  insufficient_funds: "The card was declined by its bank: not enough funds. Please pay another way.",
  expired_card: "The card was declined by its bank: it has expired. Please pay another way.",
  do_not_honour: "The card was declined by its bank. Please pay another way.",
  invalid_card: "The card was declined by its bank: it is not valid. Please pay another way.",
  card_needs_verification: "This card must be added again in the facepay app before it can pay. Please pay another way.",
  card_tap_invalid: "The card tap could not be checked. Please try again or pay another way.",
  step_up_failed: "We could not confirm it is you. The payment is cancelled.",
  factor_locked: "Too many wrong answers: try again later, or pay another way.",
  terminal_throttled: "This terminal is paused for a few minutes. Please wait.",
  user_suspended: "This account is suspended. Please pay another way.",
};

function showReceipt(payment) {
  const r = payment.receipt ?? {};
  const lines = [
    ["Amount", money(payment.amount_minor, payment.currency)],
    ["Paid by card", money(payment.authorised_minor, payment.currency)],
    ["Card", r.card ?? ""],
    ["Payer", r.payer ?? ""],
    ["Store", r.store ?? ""],
  ];
  const l = r.loyalty;
  if (l) {
    if (l.discount_minor) {
      const what = [...(l.coupons ?? []), l.points_redeemed ? `${l.points_redeemed} points` : null].filter(Boolean);
      lines.splice(1, 0, ["Discount", `−${money(l.discount_minor, payment.currency)} (${what.join(", ")})`]);
    }
    lines.push(["Points earned", `+${l.points_earned}`], ["Points balance", String(l.points_balance)]);
    if (l.stamps != null) lines.push(["Stamps", String(l.stamps)]);
    if (l.rewards?.length) lines.push(["Reward", l.rewards.join(", ")]);
  }
  $("receipt-lines").replaceChildren(...lines.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("receipt-title").textContent = payment.state === "authorised" ? "Approved (to be captured)" : "Approved";
  $("receipt").classList.remove("hidden");
}

let pending = null; // the payment awaiting a step-up

function showStepUp(payment) {
  pending = payment;
  const methods = payment.step_up?.methods ?? [];
  const [field, label] = methods.includes("phone_last4")
    ? ["phone_last4", "Last 4 digits of your phone"]
    : methods.includes("pin")
      ? ["pin", "Your PIN"]
      : methods.includes("phone")
        ? ["phone", "Your phone number"]
        : ["card_tap", "Tap your card on the reader"];
  $("step-up-form").dataset.field = field;
  $("step-up-label").textContent = label;
  $("step-up-value").type = field === "pin" ? "password" : "text";
  $("step-up-value").value = "";
  $("step-up").classList.remove("hidden");
  $("step-up-value").focus();
}

function answered(answer) {
  const payment = answer.body?.payment ?? answer.body;
  answerHeldUntil = Date.now() + ANSWER_HOLD_MS;
  $("step-up").classList.add("hidden");
  if (answer.status === 201 || (answer.status === 200 && ["captured", "authorised"].includes(payment?.state))) {
    pending = null;
    say($("status"), `Approved: ${money(payment.authorised_minor, payment.currency)}`, "good");
    showReceipt(payment);
  } else if (answer.status === 202 || answer.code === "step_up_mismatch") {
    const left = payment?.step_up?.attempts_left;
    say($("status"), answer.status === 202 ? "Please confirm it is you." : `That does not match: ${left} attempts left.`, "wait");
    showStepUp(payment);
  } else if (answer.status === 200) {
    // The server had this payment from an earlier try that ended without
    // an answer: it is over, and nothing more will be charged for it.
    pending = null;
    say($("status"), `This payment did not go through (${payment?.reason ?? payment?.state}). Press Pay to try again.`, "bad");
  } else {
    pending = null;
    say($("status"), DECLINES[answer.code] ?? answer.message, "bad");
  }
}

async function pay(event) {
  event.preventDefault();
  if (busy) return;
  busy = true;
  $("pay").disabled = true;
  $("receipt").classList.add("hidden");
  $("step-up").classList.add("hidden");
  try {
    say($("status"), "Look at the camera and hold still…", "wait");
    const frames = await burst($("video"), $("canvas"));
    say($("status"), "Checking…", "wait");
    const body = JSON.stringify({ amount: $("amount").value.trim(), currency: $("currency").value, frames });
    answered(await send("POST", "/v1/terminal/payments", body, newKey()));
  } finally {
    busy = false;
    $("pay").disabled = false;
  }
}

async function stepUp(event) {
  event.preventDefault();
  if (!pending || busy) return;
  busy = true;
  try {
    const field = $("step-up-form").dataset.field;
    const body = JSON.stringify({ [field]: $("step-up-value").value.trim() });
    const path = `/v1/terminal/payments/${pending.id}/step-up`;
    say($("status"), "Checking…", "wait");
    answered(await send("POST", path, body, newKey()));
  } finally {
    busy = false;
  }
}

/** While idle, tells the payer how to stand, from the face engine. */
async function guide() {
  const idle = () => !busy && !pending && Date.now() >= answerHeldUntil;
  if (idle() && $("video").videoWidth > 0 && $("receipt").classList.contains("hidden")) {
    try {
      const reasons = await quality(grab($("video"), $("canvas")));
      if (idle()) {
        const ready = reasons.length === 0;
        $("camera").dataset.tone = ready ? "good" : "";
        say($("status"), ready ? "Ready: enter the amount and press Pay." : guidance(reasons[0]) ?? "Look at the camera.", ready ? "good" : "wait");
      }
    } catch {
      // Guidance is a courtesy: a missed round changes nothing.
    }
  }
  setTimeout(guide, GUIDE_EVERY_MS);
}

async function start() {
  const keypad = $("keypad");
  for (const d of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "✓"]) {
    keypad.append(el("button", {
      type: d === "✓" ? "submit" : "button",
      "aria-label": d === "⌫" ? "Delete" : d === "✓" ? "Confirm" : d,
      onclick: () => {
        const input = $("step-up-value");
        if (d === "⌫") input.value = input.value.slice(0, -1);
        else if (d !== "✓") input.value += d;
      },
    }, d));
  }
  $("pair-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("pair-button").disabled = true;
    say($("provision-status"), "Pairing…", "wait");
    try {
      terminal = await pair($("pair-terminal").value.trim(), $("pair-code").value.trim());
      $("pair-code").value = "";
      say($("provision-status"), "", "");
      ready();
    } catch (e) {
      say($("provision-status"), e instanceof NetworkError ? "The network is down: try again." : e.message, "bad");
    } finally {
      $("pair-button").disabled = false;
    }
  });
  $("forget").addEventListener("click", async () => {
    if (!confirm("Remove this terminal's key from this browser? It must be paired again, with a new code.")) return;
    await stored("readwrite", (s) => s.delete("this"));
    location.reload();
  });
  $("amount-form").addEventListener("submit", pay);
  $("amount").addEventListener("input", () => { answerHeldUntil = 0; });
  $("step-up-form").addEventListener("submit", stepUp);
  $("step-up-cancel").addEventListener("click", () => {
    // A step-up already sent is answered by the server, not cancelled here.
    if (busy) return;
    pending = null;
    answerHeldUntil = Date.now() + ANSWER_HOLD_MS;
    $("step-up").classList.add("hidden");
    say($("status"), "Cancelled: nothing was charged.", "");
  });
  const params = new URLSearchParams(location.search);
  if (params.get("amount")) $("amount").value = params.get("amount");
  if (params.get("terminal")) $("pair-terminal").value = params.get("terminal");
  terminal = await stored("readonly", (s) => s.get("this"));
  if (terminal?.currency) $("currency").value = terminal.currency;
  if (params.get("currency")) $("currency").value = params.get("currency");
  if (terminal) ready();
  else $("provision").classList.remove("hidden");
}

async function ready() {
  $("provision").classList.add("hidden");
  $("till").classList.remove("hidden");
  $("forget").classList.remove("hidden");
  $("terminal-name").textContent = terminal.terminalId;
  try {
    await openCamera($("video"));
    say($("status"), "Ready: enter the amount and press Pay.", "");
    guide();
  } catch (e) {
    say($("status"), `No camera: ${e.message}`, "bad");
  }
}

start();
