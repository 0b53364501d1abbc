// Shared by the three pages: JSON calls with the API's error shape, money
// formatting, idempotency keys, camera frames, and the quality gate's
// reasons in words. Plain ES modules, served as they are: no build step.

/** Minor units per major unit, for the currencies the demo uses. */
const EXPONENT = { KRW: 0, JPY: 0, VND: 0, IDR: 2, USD: 2, EUR: 2, THB: 2 };

/** "4500" KRW -> "₩4,500"; 1999 USD -> "$19.99". */
export function money(minor, currency) {
  const exponent = EXPONENT[currency] ?? 2;
  return new Intl.NumberFormat(undefined, {
    style: "currency",
    currency,
    minimumFractionDigits: exponent,
    maximumFractionDigits: exponent,
  }).format(minor / 10 ** exponent);
}

/** A fresh random key: one per payment, reused unchanged by its retries. */
export function newKey() {
  return crypto.randomUUID();
}

/** What the quality gate's reasons mean to the person at the camera. */
const GUIDANCE = {
  no_face: "No face found: look at the camera.",
  multiple_faces: "More than one face: only you should be in view.",
  face_too_small: "Move closer to the camera.",
  low_detection_score: "Face not clear: look straight at the camera.",
  extreme_pose: "Face the camera straight on.",
  too_blurry: "Hold still.",
  too_dark: "Too dark: find more light.",
  too_bright: "Too bright: avoid strong light behind or on your face.",
};

export function guidance(code) {
  return GUIDANCE[code] ?? null;
}

/** An answer of the API: status, parsed body, and its error if any. */
export class Answer {
  constructor(status, body) {
    this.status = status;
    this.body = body;
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  get code() {
    return this.body?.error?.code ?? null;
  }
  get message() {
    return this.body?.error?.message ?? `the server answered ${this.status}`;
  }
}

/**
 * Calls the API. A lost network throws `NetworkError`; every answer the
 * server gives, error or not, comes back as an `Answer`.
 */
export async function call(method, path, { headers = {}, body, timeoutMs = 15000 } = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
      body,
      signal: controller.signal,
    });
  } catch (e) {
    throw new NetworkError(e);
  } finally {
    clearTimeout(timer);
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: { code: "not_json", message: text.slice(0, 200) } };
  }
  return new Answer(response.status, parsed);
}

export class NetworkError extends Error {
  constructor(cause) {
    super("the network is unreachable");
    this.cause = cause;
  }
}

/** Opens the camera into `video`; the stream, or an error in words. */
export async function openCamera(video, facingMode = "user") {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("This browser cannot open a camera here (it needs https or localhost).");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode, width: { ideal: 640 }, height: { ideal: 480 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  return stream;
}

/** One frame of `video` as base64 JPEG (no data: prefix). */
export function grab(video, canvas) {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/jpeg", 0.9).split(",", 2)[1];
}

/** `count` frames `gapMs` apart: the short burst liveness looks at. */
export async function burst(video, canvas, count = 5, gapMs = 120) {
  const frames = [];
  for (let i = 0; i < count; i += 1) {
    if (i > 0) await new Promise((r) => setTimeout(r, gapMs));
    frames.push(grab(video, canvas));
  }
  return frames;
}

/** Asks the face engine about one frame; the reasons it cannot be used. */
export async function quality(jpegBase64) {
  const bytes = Uint8Array.from(atob(jpegBase64), (c) => c.charCodeAt(0));
  const response = await fetch("/api/v1/face/analyze", {
    method: "POST",
    headers: { "content-type": "image/jpeg" },
    body: bytes,
  });
  if (!response.ok) return [];
  const analysis = await response.json();
  return analysis.rejections ?? [];
}

/** Shows `text` in `element` with a tone: "", "good", "bad" or "wait". */
export function say(element, text, tone = "") {
  element.textContent = text;
  element.dataset.tone = tone;
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attributes)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * A banner under the page's header naming what this deployment only
 * simulates (the card issuer, foreign networks, FX rates), so nobody takes
 * a simulated approval for a real one. Nothing shows when every part is
 * real, or when the server cannot be asked.
 */
async function showSimulated() {
  let answer;
  try {
    answer = await call("GET", "/v1/deployment", { timeoutMs: 5000 });
  } catch {
    return;
  }
  const parts = answer.ok ? answer.body.simulated ?? [] : [];
  if (parts.length === 0) return;
  const banner = el(
    "p",
    { class: "simulated", role: "status", "data-testid": "simulated" },
    `Simulated: ${parts.join(", ")}. No real card is charged and no real money moves.`,
  );
  document.querySelector("header")?.after(banner);
}

showSimulated();
