// brandvoice console: what both pages share.
//
// - api(): fetch against the same origin's /v1 API. A 401 or 403 opens the
//   API-key dialog; the key is kept in sessionStorage (gone when the browser
//   session ends) and sent as `Authorization: Bearer KEY`; the request is
//   then retried. Any other error becomes an ApiError whose message is the
//   server's own plain-words message.
// - stream(): the same for an SSE answer (POST, so no EventSource).
// - el()/svg(): DOM builders that set text with textContent only, so text
//   from the API (model output!) can never become markup.
// - measure(): the channel length units of prompts/channels.yaml, in JS, for
//   the live count as the agent edits (the server's lint stays the judge).
"use strict";

const BV = (() => {
  const KEY = "brandvoice.apiKey";

  class ApiError extends Error {
    constructor(status, type, message, field) {
      super(message);
      this.status = status;
      this.type = type;
      this.field = field;
    }
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, String(v));
    }
    for (const c of children.flat(Infinity)) if (c) e.append(c);
    return e;
  }

  // ---- errors shown in plain words -------------------------------------
  function showError(message, where) {
    const box = document.getElementById("errors");
    if (!box) { alert(message); return; }
    const item = el("div", { class: "error", role: "alert" },
      el("span", { text: message }),
      el("button", { type: "button", class: "link", "aria-label": "Dismiss this message", onclick: () => item.remove() }, "×"));
    box.append(item);
    if (where) item.dataset.where = where;
    return item;
  }
  function clearErrors() {
    const box = document.getElementById("errors");
    if (box) box.replaceChildren();
  }
  function describe(err) {
    if (err instanceof ApiError) {
      const what = {
        overloaded: "The server is busy right now. ",
        not_ready: "The model is not loaded on this server. ",
        timeout: "The draft took too long. ",
        store_unavailable: "This server has no reviews store. ",
        unauthorized: "", forbidden: "",
      }[err.type] || "";
      return what + err.message;
    }
    if (err && err.name === "TypeError") return "The server did not answer (" + err.message + "). Is brandvoice running?";
    return String(err && err.message ? err.message : err);
  }
  window.addEventListener("error", (e) => showError("Something went wrong in the page: " + e.message));
  window.addEventListener("unhandledrejection", (e) => showError(describe(e.reason)));

  // ---- API key ---------------------------------------------------------
  function key() { return sessionStorage.getItem(KEY) || ""; }
  let asking = null;
  // The dialog is built here, once, so both pages share one copy of its markup.
  function keyDialog() {
    let dlg = document.getElementById("key-dialog");
    if (dlg) return dlg;
    dlg = el("dialog", { id: "key-dialog", "aria-labelledby": "key-title" },
      el("form", { method: "dialog" },
        el("h2", { id: "key-title", text: "API key" }),
        el("p", { id: "key-reason" }),
        el("label", { for: "key-input", text: "Key" }),
        el("input", { id: "key-input", type: "password", autocomplete: "off", spellcheck: "false" }),
        el("p", { class: "muted", text: "Kept for this browser session only." }),
        el("div", { class: "actions" },
          el("button", { value: "ok", class: "primary", text: "Use this key" }),
          el("button", { value: "cancel", formnovalidate: true, text: "Cancel" }))));
    document.body.append(dlg);
    return dlg;
  }
  function askForKey(reason) {
    if (asking) return asking;
    const dlg = keyDialog();
    const input = document.getElementById("key-input");
    document.getElementById("key-reason").textContent = reason;
    input.value = "";
    asking = new Promise((resolve) => {
      const done = () => {
        dlg.removeEventListener("close", done);
        asking = null;
        if (dlg.returnValue === "ok" && input.value.trim()) {
          sessionStorage.setItem(KEY, input.value.trim());
          updateKeyStatus();
          resolve(true);
        } else resolve(false);
      };
      dlg.addEventListener("close", done);
      dlg.showModal();
      input.focus();
    });
    return asking;
  }
  function updateKeyStatus() {
    const s = document.getElementById("key-status");
    if (!s) return;
    s.replaceChildren();
    if (key()) {
      s.append("API key set ", el("button", { type: "button", class: "link", onclick: () => { sessionStorage.removeItem(KEY); updateKeyStatus(); } }, "Forget key"));
    }
  }

  async function errorFrom(resp) {
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    const e = body && body.error;
    if (e && e.message) return new ApiError(resp.status, e.type || "error", e.message, e.field);
    const plain = {
      401: "This server needs an API key.", 403: "This API key is not allowed to do that.",
      404: "Not found.", 429: "Too many requests; wait a moment.", 502: "The server's gateway failed.",
      503: "The server is not ready.", 504: "The server took too long.",
    }[resp.status] || "The server answered " + resp.status + " " + resp.statusText + ".";
    return new ApiError(resp.status, "http_" + resp.status, plain);
  }

  // fetch with the key; a 401/403 asks for a key and retries.
  async function send(path, opts) {
    for (let attempt = 0; ; attempt++) {
      const headers = Object.assign({}, (opts && opts.headers) || {});
      if (key()) headers["Authorization"] = "Bearer " + key();
      const resp = await fetch(path, Object.assign({}, opts, { headers }));
      if ((resp.status === 401 || resp.status === 403) && attempt < 3) {
        const err = await errorFrom(resp);
        const why = resp.status === 401
          ? (key() ? "The server did not accept this key: " : "This server needs an API key: ") + err.message
          : "This key may not do that: " + err.message + " Enter another key, or cancel.";
        if (await askForKey(why)) continue;
        throw err;
      }
      return resp;
    }
  }

  // Seeds are u64: past 2^53 a JS number would show (and send back) a
  // different seed, so they are kept as the JSON's own digits.
  function parseJson(text) {
    return JSON.parse(text, (k, v, ctx) => (k === "seed" && typeof v === "number" && !Number.isSafeInteger(v) && ctx && ctx.source ? ctx.source : v));
  }

  async function api(path, opts) {
    opts = Object.assign({}, opts || {});
    if (opts.json !== undefined) {
      opts.method = opts.method || "POST";
      opts.headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    const resp = await send(path, opts);
    if (!resp.ok) throw await errorFrom(resp);
    const type = resp.headers.get("content-type") || "";
    const text = await resp.text();
    return type.includes("json") ? parseJson(text) : text;
  }

  // POST `body`, read the SSE answer; `on[event](data)` for each event.
  async function stream(path, body, on, signal) {
    const resp = await send(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(Object.assign({}, body, { stream: true })), signal });
    if (!resp.ok) throw await errorFrom(resp);
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (!data.length) continue;
        const text = data.join("\n");
        let parsed = text;
        try { parsed = parseJson(text); } catch (_) { /* [DONE] */ }
        if (event === "error") {
          const e = parsed && parsed.error ? parsed.error : { type: "error", message: String(text) };
          throw new ApiError(200, e.type, e.message, e.field);
        }
        if (on[event]) on[event](parsed);
      }
    }
  }

  // ---- channel length units (prompts/channels.yaml) --------------------
  // A port of src/style/text.rs (twitter_length, sms_info, …); the browser
  // test checks it against the Rust functions on the same strings.
  const segmenter = (g) => (typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter("en", { granularity: g }) : null);
  const SEG = { grapheme: segmenter("grapheme"), word: segmenter("word"), sentence: segmenter("sentence") };
  function graphemes(s) { return SEG.grapheme ? Array.from(SEG.grapheme.segment(s), (g) => g.segment) : Array.from(s); }
  const URL_RE = /(?<![A-Za-z0-9_])(?:https?:\/\/[\x21-\x7E]+|www\.[\x21-\x7E]+|[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|co|app|travel|bank|jp|in|uk|de|fm)(?![A-Za-z0-9_])(?:\/[\x21-\x7E]*)?)/gi;
  const EMOJI_PRESENTATION = [[0x1F000, 0x1FAFF], [0x231A, 0x231B], [0x23E9, 0x23EC], [0x23F0, 0x23F0], [0x23F3, 0x23F3],
    [0x25FD, 0x25FE], [0x2614, 0x2615], [0x2648, 0x2653], [0x267F, 0x267F], [0x2693, 0x2693], [0x26A1, 0x26A1], [0x26AA, 0x26AB],
    [0x26BD, 0x26BE], [0x26C4, 0x26C5], [0x26CE, 0x26CE], [0x26D4, 0x26D4], [0x26EA, 0x26EA], [0x26F2, 0x26F3], [0x26F5, 0x26F5],
    [0x26FA, 0x26FA], [0x26FD, 0x26FD], [0x2705, 0x2705], [0x270A, 0x270B], [0x2728, 0x2728], [0x274C, 0x274C], [0x274E, 0x274E],
    [0x2753, 0x2755], [0x2757, 0x2757], [0x2764, 0x2764], [0x2795, 0x2797], [0x27B0, 0x27B0], [0x27BF, 0x27BF], [0x2B1B, 0x2B1C],
    [0x2B50, 0x2B50], [0x2B55, 0x2B55]];
  function isEmoji(g) {
    const first = g.codePointAt(0);
    if (first === undefined) return false;
    if (g.includes("\u20E3")) return true;
    if (g.includes("\uFE0F") && !/^[0-9#*]/.test(g)) return true;
    return EMOJI_PRESENTATION.some(([a, b]) => first >= a && first <= b);
  }
  function twitterWeight(cp) { return cp <= 4351 || (cp >= 8192 && cp <= 8205) || (cp >= 8208 && cp <= 8223) || (cp >= 8242 && cp <= 8247) ? 1 : 2; }
  function twitterPart(s) {
    let n = 0;
    for (const g of graphemes(s.normalize("NFC"))) {
      if (isEmoji(g)) n += 2;
      else for (const ch of g) n += twitterWeight(ch.codePointAt(0));
    }
    return n;
  }
  function twitterLength(text) {
    let total = 0;
    let pos = 0;
    for (const m of text.matchAll(URL_RE)) {
      const url = m[0].replace(/[.,!?:;'"…]+$/, "");
      if (!url) continue;
      total += twitterPart(text.slice(pos, m.index)) + 23;
      pos = m.index + url.length;
    }
    return total + twitterPart(text.slice(pos));
  }
  const GSM7_BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  const GSM7_EXTENSION = "^{}\\[~]|€\f";
  function smsSegments(text) {
    let septets = 0;
    let gsm7 = true;
    for (const ch of text) {
      if (GSM7_BASIC.includes(ch)) septets += 1;
      else if (GSM7_EXTENSION.includes(ch)) septets += 2;
      else { gsm7 = false; break; }
    }
    const [units, single, multi] = gsm7 ? [septets, 160, 153] : [text.length, 70, 67];
    return units === 0 ? 0 : units <= single ? 1 : Math.ceil(units / multi);
  }
  const W = "(?:(?![\\p{sc=Han}\\p{sc=Hiragana}\\p{sc=Katakana}])[\\p{L}\\p{M}\\p{N}_])";
  const WORD_RE = new RegExp("[\\p{sc=Han}\\p{sc=Hiragana}]|[\\p{sc=Katakana}\u30FC]+|" + W + "+(?:(?:['\u2019.:\u00B7]|(?<=\\p{N})[,;](?=\\p{N}))" + W + "+)*", "gu");
  function measure(text, unit) {
    switch (unit) {
      case "twitter": return twitterLength(text);
      // UAX #29 words as src/style/text.rs counts them: letters and digits
      // joined by ' ’ . : · (and , ; between digits); each Han or hiragana
      // character alone, katakana in runs. (Chromium's Intl.Segmenter splits
      // "tunely.example.com", which the server counts as one word.)
      case "words": return (text.match(WORD_RE) || []).filter((w) => /[\p{L}\p{N}]/u.test(w)).length;
      case "sentences":
        return SEG.sentence ? Array.from(SEG.sentence.segment(text)).filter((x) => x.segment.trim()).length : text.split(/[.!?。！？]+(?:\s+|$)/).filter((x) => x.trim()).length;
      case "paragraphs": {
        let n = 0;
        let inPar = false;
        for (const line of text.split(/\r?\n/)) {
          if (!line.trim()) inPar = false;
          else if (!inPar) { inPar = true; n++; }
        }
        return n;
      }
      case "sms_segments": return smsSegments(text);
      default: return graphemes(text).length;
    }
  }
  const UNIT_WORDS = { twitter: "Twitter characters", graphemes: "characters", words: "words", sentences: "sentences", paragraphs: "paragraphs", sms_segments: "SMS segments" };

  // byte offsets (the API's spans) to JS string indices
  function byteToIndex(text, byte) {
    const enc = new TextEncoder();
    let bytes = 0;
    let i = 0;
    for (const ch of text) {
      if (bytes >= byte) break;
      bytes += enc.encode(ch).length;
      i += ch.length;
    }
    return i;
  }

  function fillSelect(select, items, placeholder) {
    select.replaceChildren();
    if (placeholder !== undefined) select.append(el("option", { value: "" }, placeholder));
    for (const [value, label] of items) select.append(el("option", { value }, label));
  }

  function pct(x) { return x === null || x === undefined ? "–" : Math.round(x * 100) + "%"; }
  function num(x, d) { return x === null || x === undefined || Number.isNaN(x) ? "–" : Number(x).toFixed(d === undefined ? 2 : d); }

  document.addEventListener("DOMContentLoaded", updateKeyStatus);

  return { ApiError, el, svg, api, stream, showError, clearErrors, describe, measure, UNIT_WORDS, byteToIndex, fillSelect, pct, num, askForKey };
})();
