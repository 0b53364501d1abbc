// The shopper's app: sign up with phone, PIN, a selfie checked live by the
// quality gate, and a card checked before it leaves the phone (its security
// code verified once by the bank, never kept); then my cards (add, remove,
// choose the one that pays; a card about to expire is pointed out), my
// payments, points and coupons, and a button that really deletes my face.

import { burst, call, el, grab, guidance, money, newKey, openCamera, quality, say } from "/web/lib.js";

const $ = (id) => document.getElementById(id);
const TOKEN = "facepay-token";
let frames = null; // the selfie burst, once it passes the quality gate

/** Luhn's check digit, as the server checks it again. */
export function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i += 1) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return digits.length >= 12 && sum % 10 === 0;
}

/** "12/29" -> { month: 12, year: 2029 } if it is not past, else null. */
export function expiry(text, now = new Date()) {
  const m = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(text);
  if (!m) return null;
  const month = Number(m[1]);
  const year = m[2].length === 2 ? 2000 + Number(m[2]) : Number(m[2]);
  if (month < 1 || month > 12) return null;
  const lastMonth = now.getFullYear() * 12 + now.getMonth() + 1;
  return year * 12 + month >= lastMonth ? { month, year } : null;
}

/** How often the camera view asks the quality gate how the face looks. */
const GUIDE_EVERY_MS = 1500;
let taking = false;

/** Live feedback before the selfie: the gate's reasons, in words. */
async function guide() {
  if ($("enrol").classList.contains("hidden")) return;
  if (!frames && !taking && $("video").videoWidth > 0) {
    try {
      const reasons = await quality(grab($("video"), $("canvas")));
      if (!frames && !taking) {
        $("camera").dataset.tone = reasons.length ? "" : "good";
        say($("selfie-status"), reasons.length ? reasons.map((r) => guidance(r) ?? r).join(" ") : "Face the camera in good light, then take a selfie.", "");
      }
    } catch {
      // Feedback is a courtesy: a missed round changes nothing.
    }
  }
  setTimeout(guide, GUIDE_EVERY_MS);
}

async function takeSelfie() {
  taking = true;
  try {
    await takeOne();
  } finally {
    taking = false;
  }
}

async function takeOne() {
  const video = $("video");
  say($("selfie-status"), "Hold still…", "wait");
  const first = grab(video, $("canvas"));
  const reasons = await quality(first);
  if (reasons.length > 0) {
    frames = null;
    $("camera").dataset.tone = "";
    say($("selfie-status"), reasons.map((r) => guidance(r) ?? r).join(" "), "bad");
    return;
  }
  frames = [first, ...(await burst(video, $("canvas"), 2, 150))];
  $("camera").dataset.tone = "good";
  say($("selfie-status"), "Looks good. You can take it again if you like.", "good");
}

const MESSAGES = {
  phone_invalid: "Check the phone number: digits with the country code.",
  pin_invalid: "The PIN must be 4 to 12 digits.",
  card_number_luhn: "Check the card number: it does not add up.",
  card_security_code_invalid: "The security code is the 3 digits on the back of the card (4 on the front of an Amex).",
  incorrect_security_code: "Your bank says that security code is not the card's: check it and try again.",
  face_already_enrolled: "This face already has an account.",
  liveness_failed: "We could not confirm a live person: take the selfie again, facing the camera.",
};

async function enrol(event) {
  event.preventDefault();
  const status = $("enrol-status");
  const card = $("card").value.replace(/[\s-]/g, "");
  const pin = $("pin").value;
  const exp = expiry($("expiry").value);
  const cvc = $("cvc").value.trim();
  const problems = [];
  if (!/^\+?\d{8,15}$/.test($("phone").value.replace(/[\s-]/g, ""))) problems.push(MESSAGES.phone_invalid);
  if (!/^\d{4,12}$/.test(pin)) problems.push(MESSAGES.pin_invalid);
  if (!/^\d+$/.test(card) || !luhn(card)) problems.push(MESSAGES.card_number_luhn);
  if (!exp) problems.push("Check the expiry: MM/YY, not in the past.");
  if (!/^\d{3,4}$/.test(cvc)) problems.push(MESSAGES.card_security_code_invalid);
  if (!frames) problems.push("Take a selfie first.");
  if (problems.length) {
    say(status, problems.join(" "), "bad");
    return;
  }
  $("enrol-button").disabled = true;
  say(status, "Signing up…", "wait");
  try {
    const body = JSON.stringify({
      phone: $("phone").value.replace(/[\s-]/g, ""),
      pin,
      frames,
      card: { number: card, expiry_month: exp.month, expiry_year: exp.year, security_code: cvc },
    });
    const answer = await call("POST", "/v1/users", { headers: { "idempotency-key": newKey() }, body });
    if (answer.status !== 201) {
      say(status, MESSAGES[answer.code] ?? answer.message, "bad");
      return;
    }
    localStorage.setItem(TOKEN, answer.body.token);
    await showMine();
  } catch (e) {
    say(status, `Not signed up: ${e.message}`, "bad");
  } finally {
    $("enrol-button").disabled = false;
  }
}

function auth() {
  return { authorization: `Bearer ${localStorage.getItem(TOKEN)}` };
}

async function showMine() {
  $("enrol").classList.add("hidden");
  $("mine").classList.remove("hidden");
  const answer = await call("GET", "/v1/users/me", { headers: auth() });
  if (answer.status === 401) {
    localStorage.removeItem(TOKEN);
    location.reload();
    return;
  }
  const me = answer.body;
  $("mine-summary").textContent = `${me.phone ?? ""} · ${me.has_face ? "face enrolled" : "no face enrolled"}`;
  $("delete-face").disabled = !me.has_face;
  showCards(me.payment_methods);

  const loyalty = [];
  for (const p of me.points) {
    const choice = me.choices.find((c) => c.merchant_id === p.merchant_id);
    const box = el("input", { type: "checkbox", id: `redeem-${p.merchant_id}` });
    box.checked = choice?.redeem_points === true;
    box.addEventListener("change", async () => {
      const body = JSON.stringify({ coupon_id: choice?.coupon_id ?? null, redeem_points: box.checked });
      const saved = await call("PUT", `/v1/users/me/loyalty/${encodeURIComponent(p.merchant_id)}`, { headers: auth(), body });
      say($("mine-status"), saved.ok ? "Saved." : saved.message, saved.ok ? "good" : "bad");
    });
    loyalty.push(el("div", { class: "card" },
      el("strong", {}, `${p.merchant}: ${p.points} points`),
      el("label", { for: box.id, class: "hint" }, box, " Pay with my points there")));
  }
  for (const s of me.stamps) {
    loyalty.push(el("div", { class: "card" }, `Stamp card: ${s.stamps} of ${s.stamps_per_reward}`));
  }
  for (const c of me.coupons) {
    loyalty.push(el("div", { class: "card" }, `Coupon: ${c.name} (${c.uses_left} left)`));
  }
  if (!loyalty.length) loyalty.push(el("p", { class: "hint" }, "No points or coupons yet."));
  $("loyalty").replaceChildren(...loyalty);

  const rows = me.payments.map((p) => el("tr", {},
    el("td", {}, new Date(p.created_at_ms).toLocaleString()),
    el("td", {}, p.store_id),
    el("td", { class: "num" }, money(p.authorised_minor || p.amount_minor, p.currency)),
    el("td", {}, el("span", { class: "badge" }, p.state.replaceAll("_", " ")))));
  $("payments").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4", class: "hint" }, "No payments yet."))]));
}

/** The wallet: each card with its default and remove buttons. */
function showCards(cards) {
  const soon = cards.filter((c) => c.expires_soon);
  const notice = $("cards-notice");
  notice.classList.toggle("hidden", !soon.length && cards.length > 0);
  notice.textContent = !cards.length
    ? "You have no card: add one to pay with your face."
    : soon.map((c) => `Your ${c.brand} ****${c.last4} expires ${c.expiry_month}/${c.expiry_year}: add its replacement.`).join(" ");
  $("cards").replaceChildren(...cards.map((c) => {
    const actions = [];
    if (!c.is_default) {
      const pick = el("button", { type: "button", class: "secondary" }, "Pay with this card");
      pick.addEventListener("click", () => cardAction("POST", `${c.id}/default`, "This card pays from now on."));
      actions.push(pick);
    }
    const remove = el("button", { type: "button", class: "danger" }, "Remove");
    remove.addEventListener("click", () => {
      if (confirm(`Remove ${c.brand} ****${c.last4}? It is destroyed and cannot be recovered.`)) {
        cardAction("DELETE", c.id, "The card is removed.");
      }
    });
    actions.push(remove);
    const label = `${c.brand} ****${c.last4} · ${c.expiry_month}/${c.expiry_year}${c.is_default ? " · pays" : ""}${c.expires_soon ? " · expires soon" : ""}`;
    return el("div", { class: "card" }, el("strong", {}, label), el("p", { class: "row" }, ...actions));
  }));
}

async function cardAction(method, path, done) {
  const answer = await call(method, `/v1/users/me/cards/${path}`, { headers: { ...auth(), "idempotency-key": newKey() } });
  // The list first, so that the message never stands beside a stale list.
  await showMine();
  say($("mine-status"), answer.ok ? done : answer.message, answer.ok ? "good" : "bad");
}

async function addCard(event) {
  event.preventDefault();
  const status = $("mine-status");
  const number = $("new-card").value.replace(/[\s-]/g, "");
  const exp = expiry($("new-expiry").value);
  const cvc = $("new-cvc").value.trim();
  const problems = [];
  if (!/^\d+$/.test(number) || !luhn(number)) problems.push(MESSAGES.card_number_luhn);
  if (!exp) problems.push("Check the expiry: MM/YY, not in the past.");
  if (!/^\d{3,4}$/.test(cvc)) problems.push(MESSAGES.card_security_code_invalid);
  if (problems.length) {
    say(status, problems.join(" "), "bad");
    return;
  }
  $("add-card").disabled = true;
  say(status, "Checking the card with your bank…", "wait");
  try {
    const body = JSON.stringify({ card: { number, expiry_month: exp.month, expiry_year: exp.year, security_code: cvc } });
    const answer = await call("POST", "/v1/users/me/cards", { headers: { ...auth(), "idempotency-key": newKey() }, body });
    if (answer.status !== 201) {
      say(status, MESSAGES[answer.code] ?? answer.message, "bad");
      return;
    }
    $("card-form").reset();
    say(status, "The card is added.", "good");
    await showMine();
  } finally {
    $("add-card").disabled = false;
  }
}

async function deleteFace() {
  if (!confirm("Delete your face? It stops paying at once and cannot be recovered. Your account and payments stay.")) return;
  const answer = await call("DELETE", "/v1/users/me/face", { headers: auth() });
  say($("mine-status"), answer.ok ? "Your face is deleted: it can no longer pay." : answer.message, answer.ok ? "good" : "bad");
  await showMine();
}

async function start() {
  $("enrol-form").addEventListener("submit", enrol);
  // An old complaint goes as soon as the person changes something.
  $("enrol-form").addEventListener("input", () => say($("enrol-status"), ""));
  $("selfie").addEventListener("click", takeSelfie);
  $("delete-face").addEventListener("click", deleteFace);
  $("card-form").addEventListener("submit", addCard);
  $("sign-out").addEventListener("click", () => {
    localStorage.removeItem(TOKEN);
    location.reload();
  });
  if (localStorage.getItem(TOKEN)) {
    await showMine();
    return;
  }
  $("enrol").classList.remove("hidden");
  try {
    await openCamera($("video"));
    say($("selfie-status"), "Face the camera in good light, then take a selfie.", "");
    guide();
  } catch (e) {
    say($("selfie-status"), `No camera: ${e.message}`, "bad");
  }
}

start();
