// The operator console: onboarding (merchants, their stores and terminals,
// a terminal's pairing code, a merchant's first key) and the fraud review
// queue. Reads need any operator key; changes need an admin's.

import { Answer, NetworkError, call, el, money, newKey, say } from "/web/lib.js";

const $ = (id) => document.getElementById(id);
const KEY = "facepay-operator-key";

const auth = () => ({ authorization: `Bearer ${sessionStorage.getItem(KEY)}` });
/** The merchant open below the list. */
let current = null;
/**
 * Each form's idempotency key, kept until the server answers: a submit
 * retried after a lost answer cannot make a second merchant or terminal.
 */
const pending = new Map();

/** POSTs a form's body once, however often it is submitted. */
async function create(form, path, body) {
  if (!pending.has(form)) pending.set(form, newKey());
  let answer;
  try {
    answer = await call("POST", path, {
      headers: { ...auth(), "idempotency-key": pending.get(form) },
      body: JSON.stringify(body),
    });
  } catch (e) {
    if (!(e instanceof NetworkError)) throw e;
    const message = "No answer from the server: submit again, which is safe (nothing is made twice).";
    return new Answer(0, { error: { code: "network", message } });
  }
  pending.delete(form);
  return answer;
}

/** Shows a secret (a key or a pairing code) that the server shows once. */
function showOnce(label, value) {
  $("secret-label").textContent = label;
  $("secret-value").value = value;
  $("secret").classList.remove("hidden");
}

async function merchants() {
  const answer = await call("GET", "/v1/operator/merchants?limit=200", { headers: auth() });
  if (!answer.ok) {
    say($("merchants-status"), answer.message, "bad");
    return answer;
  }
  const rows = answer.body.merchants.map((m) => el("tr", { "data-merchant": m.id },
    el("td", {}, m.name),
    el("td", { class: "wide" }, m.id),
    el("td", { class: "num" }, String(m.fee_bps)),
    el("td", {}, m.settlement_currency ?? ""),
    el("td", {}, el("span", { class: "badge", "data-tone": m.status === "active" ? "" : "bad" }, m.status)),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => openMerchant(m.id), "aria-label": `Manage ${m.name}` }, "Manage"))));
  $("merchants").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "6", class: "hint" }, "No merchants yet."))]));
  return answer;
}

async function addMerchant(event) {
  event.preventDefault();
  const answer = await create("merchant", "/v1/operator/merchants", {
    name: $("merchant-name").value.trim(),
    legal_name: $("merchant-legal-name").value.trim(),
    fee_bps: Number($("merchant-fee").value),
    settlement_currency: $("merchant-currency").value.trim().toUpperCase(),
  });
  if (!answer.ok) {
    say($("merchants-status"), answer.message, "bad");
    return;
  }
  $("merchant-form").reset();
  say($("merchants-status"), `Added ${answer.body.name}: give it a store, a terminal and a key below.`, "good");
  await merchants();
  await openMerchant(answer.body.id);
}

function renderMerchant(detail) {
  const { merchant, stores, terminals } = detail;
  $("merchant-title").textContent = `${merchant.name} (${merchant.status})`;
  $("stores").replaceChildren(...(stores.length ? stores.map((s) => el("tr", { "data-store": s.id },
    el("td", {}, s.name), el("td", { class: "wide" }, s.id), el("td", {}, s.city),
    el("td", {}, s.time_zone ?? ""), el("td", {}, s.currency), el("td", { class: "wide" }, hours(s.opening_hours))))
    : [el("tr", {}, el("td", { colspan: "6", class: "hint" }, "No stores yet."))]));
  $("terminal-store").replaceChildren(...stores.map((s) => el("option", { value: s.id }, s.name)));
  const storeName = Object.fromEntries(stores.map((s) => [s.id, s.name]));
  $("terminals").replaceChildren(...(terminals.length ? terminals.map((t) => el("tr", { "data-terminal": t.id },
    el("td", {}, t.name), el("td", { class: "wide" }, t.id), el("td", {}, storeName[t.store_id] ?? t.store_id),
    el("td", {}, el("span", { class: "badge" }, t.status === "active" && !t.paired ? "waiting to pair" : t.status)),
    el("td", {}, t.status === "retired" ? "" : el("span", { class: "row" },
      el("button", { type: "button", class: "secondary", onclick: () => rePair(t), "aria-label": `New pairing code for ${t.name}` }, "New code"),
      el("button", { type: "button", class: "danger", onclick: () => retire(t), "aria-label": `Retire ${t.name}` }, "Retire")))))
    : [el("tr", {}, el("td", { colspan: "5", class: "hint" }, "No terminals yet."))]));
}

async function openMerchant(id) {
  const answer = await call("GET", `/v1/operator/merchants/${encodeURIComponent(id)}`, { headers: auth() });
  if (!answer.ok) {
    say($("merchants-status"), answer.message, "bad");
    return;
  }
  if (current !== id) {
    $("secret").classList.add("hidden");
    say($("merchant-status"), "");
  }
  current = id;
  renderMerchant(answer.body);
  $("merchant").classList.remove("hidden");
}

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** The same hours every day; none when neither time is given. */
function openingHours(opens, closes) {
  if (!opens && !closes) return [];
  return DAYS.map((day) => ({ day, opens, closes }));
}

/** "09:00–18:00", or each day's hours when they differ. */
function hours(list) {
  if (!list.length) return "not set";
  const spans = [...new Set(list.map((h) => `${h.opens}–${h.closes}`))];
  return spans.length === 1 && list.length === 7 ? `daily ${spans[0]}` : list.map((h) => `${h.day} ${h.opens}–${h.closes}`).join(", ");
}

async function addStore(event) {
  event.preventDefault();
  const answer = await create("store", "/v1/operator/stores", {
    merchant_id: current,
    name: $("store-name").value.trim(),
    address: $("store-address").value.trim(),
    city: $("store-city").value.trim(),
    country: $("store-country").value.trim().toUpperCase(),
    latitude: Number($("store-latitude").value),
    longitude: Number($("store-longitude").value),
    time_zone: $("store-time-zone").value.trim(),
    currency: $("store-currency").value.trim().toUpperCase(),
    opening_hours: openingHours($("store-opens").value, $("store-closes").value),
  });
  if (!answer.ok) {
    say($("merchant-status"), answer.message, "bad");
    return;
  }
  for (const id of ["store-name", "store-address", "store-city", "store-opens", "store-closes"]) $(id).value = "";
  say($("merchant-status"), `Opened ${answer.body.name}.`, "good");
  await openMerchant(current);
}

function showCode(pairing) {
  const until = new Date(pairing.pairing_expires_at_ms).toLocaleTimeString();
  showOnce(`Pairing code for terminal ${pairing.terminal.id}, shown once, until ${until}`, pairing.pairing_code);
}

async function addTerminal(event) {
  event.preventDefault();
  const answer = await create("terminal", "/v1/operator/terminals", {
    store_id: $("terminal-store").value,
    name: $("terminal-name").value.trim(),
  });
  if (!answer.ok) {
    say($("merchant-status"), answer.message, "bad");
    return;
  }
  $("terminal-name").value = "";
  say($("merchant-status"), `Added ${answer.body.terminal.name}: enter its id and code on the terminal.`, "good");
  showCode(answer.body);
  await openMerchant(current);
}

async function rePair(t) {
  if (t.paired && !confirm(`Unpair ${t.name}? It stops taking payments until it pairs with the new code.`)) return;
  const answer = await call("POST", `/v1/operator/terminals/${t.id}/re-pair`, { headers: auth() });
  if (!answer.ok) {
    say($("merchant-status"), answer.message, "bad");
    return;
  }
  say($("merchant-status"), `${t.name} has a new pairing code.`, "good");
  showCode(answer.body);
  await openMerchant(current);
}

async function retire(t) {
  if (!confirm(`Retire ${t.name} for good? Its requests are refused from now on.`)) return;
  const answer = await call("POST", `/v1/operator/terminals/${t.id}/retire`, { headers: auth() });
  say($("merchant-status"), answer.ok ? `${t.name} is retired.` : answer.message, answer.ok ? "good" : "bad");
  await openMerchant(current);
}

async function firstKey() {
  const answer = await create("key", `/v1/operator/merchants/${current}/keys`, { scope: "admin", label: "first admin key" });
  if (!answer.ok) {
    say($("merchant-status"), answer.message, "bad");
    return;
  }
  say($("merchant-status"), "Key made: the merchant signs in to its dashboard with it.", "good");
  showOnce("The merchant's admin key, shown once: copy it now", answer.body.secret);
}

async function review() {
  const [reviews, claims] = await Promise.all([
    call("GET", "/v1/operator/reviews", { headers: auth() }),
    call("GET", "/v1/operator/claims", { headers: auth() }),
  ]);
  const out = $("review");
  if (!reviews.ok) {
    out.replaceChildren(el("p", { class: "status", "data-tone": "bad" }, reviews.message));
    return;
  }
  const list = (items, describe) => (items.length
    ? el("ul", {}, ...items.map((i) => el("li", {}, describe(i))))
    : el("p", { class: "hint" }, "None."));
  out.replaceChildren(
    el("h3", {}, "Held for review"),
    list(reviews.body.payments ?? [], (p) => `${p.payment_id}: ${money(p.amount_minor, p.currency)} at ${p.terminal_id}`),
    el("h3", {}, "Claims"),
    list(claims.body?.claims ?? [], (c) => `${c.id}: ${c.state} (payment ${c.payment_id})`),
  );
}

async function board() {
  $("sign-in").classList.add("hidden");
  $("board").classList.remove("hidden");
  await merchants();
}

function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("operator-key").value.trim());
    const answer = await call("GET", "/v1/operator/merchants?limit=1", { headers: auth() });
    if (!answer.ok) {
      sessionStorage.removeItem(KEY);
      say($("sign-in-status"), answer.message, "bad");
      return;
    }
    board();
  });
  $("merchant-form").addEventListener("submit", addMerchant);
  $("store-form").addEventListener("submit", addStore);
  $("terminal-form").addEventListener("submit", addTerminal);
  $("first-key").addEventListener("click", firstKey);
  $("review-refresh").addEventListener("click", review);
  if (sessionStorage.getItem(KEY)) board();
  else $("sign-in").classList.remove("hidden");
}

start();
