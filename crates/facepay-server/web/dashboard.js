// The merchant's dashboard: today's payments with live updates, refunds
// after a confirmation, takings by day and week, terminals, webhook
// endpoints (a disabled one with why), a CSV export, and, with an admin
// key, the merchant's API keys (a new key's secret shown once).

import { call, el, money, newKey, say } from "/web/lib.js";

const $ = (id) => document.getElementById(id);
const KEY = "facepay-merchant-key";
const REFRESH_MS = 3000;
const CHARTS_REFRESH_MS = 60_000;
const DAY_MS = 86_400_000;
/** Pages of 100 payments read for the charts, at most. */
const PAGES_MAX = 20;

const auth = () => ({ authorization: `Bearer ${sessionStorage.getItem(KEY)}` });
let today = [];

function startOfDay(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** Payments created since `fromMs`, following the cursor. */
async function paymentsSince(fromMs) {
  const all = [];
  let cursor = null;
  for (let page = 0; page < PAGES_MAX; page += 1) {
    const query = new URLSearchParams({ from_ms: String(fromMs), limit: "100" });
    if (cursor) query.set("cursor", cursor);
    const answer = await call("GET", `/v1/merchant/payments?${query}`, { headers: auth() });
    if (!answer.ok) throw Object.assign(new Error(answer.message), { answer });
    all.push(...answer.body.payments);
    cursor = answer.body.next_cursor;
    if (!cursor) break;
  }
  return all;
}

const net = (p) => p.captured_minor - p.refunded_minor;

async function refund(p) {
  const left = p.captured_minor - p.refunded_minor;
  if (!confirm(`Refund ${money(left, p.currency)} to the payer? This cannot be undone.`)) return;
  const answer = await call("POST", `/v1/merchant/payments/${p.id}/refunds`, {
    headers: { ...auth(), "idempotency-key": newKey() },
  });
  say($("board-status"), answer.ok ? `Refunded ${money(left, p.currency)}.` : answer.message, answer.ok ? "good" : "bad");
  await Promise.all([refresh(), charts()]);
}

function renderToday() {
  const rows = today.map((p) => {
    const refundable = ["captured", "partially_refunded"].includes(p.state);
    return el("tr", { "data-payment": p.id },
      el("td", {}, new Date(p.created_at_ms).toLocaleTimeString()),
      el("td", { class: "wide" }, p.terminal_id),
      el("td", { class: "num wide" }, money(p.amount_minor, p.currency)),
      el("td", { class: "num" }, money(p.captured_minor || p.authorised_minor, p.currency)),
      el("td", {}, el("span", { class: "badge" }, p.state.replaceAll("_", " "))),
      el("td", {}, refundable
        ? el("button", { type: "button", class: "secondary", onclick: () => refund(p), "aria-label": `Refund payment at ${new Date(p.created_at_ms).toLocaleTimeString()}` }, "Refund")
        : ""));
  });
  $("payments").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", class: "hint" }, "No payments yet today."))]));
  const byCurrency = {};
  for (const p of today) byCurrency[p.currency] = (byCurrency[p.currency] ?? 0) + net(p);
  const totals = Object.entries(byCurrency).map(([c, v]) => money(v, c)).join(" · ");
  const paid = today.filter((p) => p.captured_minor > 0).length;
  $("totals").textContent = `${paid} paid of ${today.length} payments · takings ${totals || money(0, "KRW")}`;
}

/** A bar's value in few characters: "₩28.5K". */
function compact(minor, currency) {
  const exponent = { KRW: 0, JPY: 0, VND: 0 }[currency] ?? 2;
  return new Intl.NumberFormat(undefined, { style: "currency", currency, notation: "compact" }).format(minor / 10 ** exponent);
}

/** Bars of takings (captured less refunded) per bucket, as SVG. */
function bars(buckets, currency) {
  const width = 320;
  const height = 140;
  const max = Math.max(1, ...buckets.map((b) => b.value));
  const w = width / buckets.length;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height + 30}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", buckets.map((b) => `${b.label}: ${money(b.value, currency)}`).join("; "));
  buckets.forEach((b, i) => {
    const h = Math.round((b.value / max) * height);
    const rect = document.createElementNS(svg.namespaceURI, "rect");
    rect.setAttribute("x", String(i * w + 4));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(w - 8));
    rect.setAttribute("height", String(h));
    const title = document.createElementNS(svg.namespaceURI, "title");
    title.textContent = `${b.label}: ${money(b.value, currency)}`;
    rect.append(title);
    const text = document.createElementNS(svg.namespaceURI, "text");
    text.setAttribute("x", String(i * w + w / 2));
    text.setAttribute("y", String(height + 16));
    text.setAttribute("text-anchor", "middle");
    text.textContent = b.label;
    const value = document.createElementNS(svg.namespaceURI, "text");
    value.setAttribute("x", String(i * w + w / 2));
    value.setAttribute("y", String(Math.max(12, height - h - 4)));
    value.setAttribute("text-anchor", "middle");
    value.setAttribute("class", "value");
    value.textContent = b.value ? compact(b.value, currency) : "";
    svg.append(rect, text, value);
  });
  return svg;
}

async function charts() {
  const now = Date.now();
  const from = startOfDay(now) - 27 * DAY_MS;
  let payments;
  try {
    payments = await paymentsSince(from);
  } catch (e) {
    say($("board-status"), `Takings not updated: ${e.message}`, "bad");
    return;
  }
  const currency = payments[0]?.currency ?? "KRW";
  const mine = payments.filter((p) => p.currency === currency);
  const days = Array.from({ length: 7 }, (_, i) => {
    const start = startOfDay(now) - (6 - i) * DAY_MS;
    const value = mine.filter((p) => p.created_at_ms >= start && p.created_at_ms < start + DAY_MS).reduce((s, p) => s + net(p), 0);
    return { label: new Date(start).toLocaleDateString(undefined, { weekday: "short" }), value };
  });
  const weeks = Array.from({ length: 4 }, (_, i) => {
    const start = from + i * 7 * DAY_MS;
    const value = mine.filter((p) => p.created_at_ms >= start && p.created_at_ms < start + 7 * DAY_MS).reduce((s, p) => s + net(p), 0);
    return { label: new Date(start).toLocaleDateString(undefined, { month: "short", day: "numeric" }), value };
  });
  $("daily").replaceChildren(bars(days, currency));
  $("weekly").replaceChildren(bars(weeks, currency));
}

async function terminals() {
  const answer = await call("GET", "/v1/merchant/terminals", { headers: auth() });
  if (!answer.ok) return;
  $("terminals").replaceChildren(...answer.body.terminals.map((t) => el("tr", {},
    el("td", {}, t.terminal_id),
    el("td", {}, t.store),
    el("td", {}, el("span", { class: "badge" }, t.flag_reason ? `${t.status}, flagged: ${t.flag_reason}` : t.status)),
    el("td", {}, t.last_payment_at_ms ? new Date(t.last_payment_at_ms).toLocaleString() : "never"))));
}

/** An endpoint's status: enabled, failing since when, or disabled and why. */
function webhookStatus(w) {
  if (!w.enabled) return `disabled: ${w.disabled_reason ?? "no reason given"}`;
  if (w.failing_since_ms) return `enabled, failing since ${new Date(w.failing_since_ms).toLocaleString()}`;
  return "enabled";
}

async function webhooks() {
  const answer = await call("GET", "/v1/merchant/webhooks", { headers: auth() });
  if (!answer.ok) return;
  const rows = answer.body.endpoints.map((w) => el("tr", { "data-webhook": w.id },
    el("td", {}, w.url),
    el("td", {}, w.events.join(", ")),
    el("td", {}, el("span", { class: "badge", "data-tone": w.enabled ? "" : "bad" }, webhookStatus(w)))));
  $("webhooks").replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "3", class: "hint" }, "None: register one with POST /v1/merchant/webhooks."))]));
}

async function refresh() {
  try {
    today = await paymentsSince(startOfDay(Date.now()));
    renderToday();
  } catch (e) {
    if (e.answer?.status === 401) {
      sessionStorage.removeItem(KEY);
      location.reload();
      return;
    }
    say($("board-status"), `Not updated: ${e.message}`, "bad");
  }
}

/** Today's payments as CSV, quoted so that any field is safe in a sheet. */
function exportCsv() {
  const header = ["id", "created_at", "terminal_id", "state", "currency", "amount_minor", "authorised_minor", "captured_minor", "refunded_minor", "fee_minor"];
  const quote = (v) => `"${String(v).replaceAll('"', '""')}"`;
  const lines = [header.join(",")].concat(today.map((p) => [
    p.id, new Date(p.created_at_ms).toISOString(), p.terminal_id, p.state, p.currency,
    p.amount_minor, p.authorised_minor, p.captured_minor, p.refunded_minor, p.fee_minor,
  ].map(quote).join(",")));
  const link = el("a", {
    href: URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" })),
    download: `facepay-payments-${new Date().toISOString().slice(0, 10)}.csv`,
  });
  link.click();
  URL.revokeObjectURL(link.href);
}

const KEY_SCOPES = { read: "read", refund_capture: "refund and capture", admin: "admin" };

/** The merchant's keys; an admin key may make and revoke them. */
async function keys() {
  const answer = await call("GET", "/v1/merchant/keys", { headers: auth() });
  const admin = answer.ok;
  $("key-form").classList.toggle("hidden", !admin);
  if (!admin) {
    const why = answer.code === "insufficient_scope" ? "Only an admin key sees and makes keys." : answer.message;
    $("keys").replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "hint" }, why)));
    return;
  }
  $("keys").replaceChildren(...answer.body.keys.map((k) => el("tr", { "data-key": k.id },
    el("td", {}, k.label ?? k.id),
    el("td", {}, KEY_SCOPES[k.scope] ?? k.scope),
    el("td", { class: "wide" }, k.prefix ? `${k.prefix}…` : ""),
    el("td", {}, el("span", { class: "badge", "data-tone": k.state === "active" ? "" : "bad" }, k.state)),
    el("td", { class: "wide" }, k.expires_at_ms ? new Date(k.expires_at_ms).toLocaleString() : "never"),
    el("td", {}, k.state === "active"
      ? el("button", { type: "button", class: "secondary", onclick: () => revokeKey(k), "aria-label": `Revoke ${k.label ?? k.id}` }, "Revoke")
      : ""))));
}

async function makeKey(event) {
  event.preventDefault();
  const body = JSON.stringify({ scope: $("key-scope").value, label: $("key-label").value.trim() });
  const answer = await call("POST", "/v1/merchant/keys", { headers: { ...auth(), "idempotency-key": newKey() }, body });
  if (!answer.ok) {
    say($("keys-status"), answer.message, "bad");
    return;
  }
  $("key-form").reset();
  $("new-key-secret").value = answer.body.secret;
  $("new-key").classList.remove("hidden");
  say($("keys-status"), `Key made: ${KEY_SCOPES[answer.body.scope]}. Its secret is shown once, below.`, "good");
  await keys();
}

async function revokeKey(k) {
  if (!confirm(`Revoke "${k.label ?? k.id}"? Whatever uses it is refused from now on.`)) return;
  const answer = await call("POST", `/v1/merchant/keys/${k.id}/revoke`, { headers: auth() });
  say($("keys-status"), answer.ok ? `Revoked "${k.label ?? k.id}".` : answer.message, answer.ok ? "good" : "bad");
  await keys();
}

async function start() {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("api-key").value.trim());
    const answer = await call("GET", "/v1/merchant/terminals", { headers: auth() });
    if (!answer.ok) {
      sessionStorage.removeItem(KEY);
      say($("sign-in-status"), answer.message, "bad");
      return;
    }
    board();
  });
  $("export").addEventListener("click", exportCsv);
  $("key-form").addEventListener("submit", makeKey);
  if (sessionStorage.getItem(KEY)) board();
  else $("sign-in").classList.remove("hidden");
}

async function board() {
  $("sign-in").classList.add("hidden");
  $("board").classList.remove("hidden");
  await Promise.all([refresh(), charts(), terminals(), webhooks(), keys()]);
  setInterval(refresh, REFRESH_MS);
  setInterval(charts, CHARTS_REFRESH_MS);
  setInterval(webhooks, CHARTS_REFRESH_MS);
}

start();
