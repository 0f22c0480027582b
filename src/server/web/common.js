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
  function askForKey(reason) {
    if (asking) return asking;
    const dlg = document.getElementById("key-dialog");
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
  const seg = typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter(undefined, { granularity: "grapheme" }) : null;
  function graphemes(s) { return seg ? Array.from(seg.segment(s), (g) => g.segment) : Array.from(s); }
  const WIDE = /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|\p{Extended_Pictographic}/u;
  const GSM = /^[A-Za-z0-9 \r\n@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!"#¤%&'()*+,\-./:;<=>?¡ÄÖÑÜ§¿äöñüà^{}\\[~\]|€]*$/;
  function measure(text, unit) {
    switch (unit) {
      case "twitter": {
        let n = 0;
        const rest = text.replace(/https?:\/\/\S+/g, () => { n += 23; return ""; });
        for (const g of graphemes(rest)) n += WIDE.test(g) ? 2 : 1;
        return n;
      }
      case "words": return (text.match(/\S+/g) || []).length;
      case "sentences": return text.split(/[.!?。！？]+(?:\s+|$)/).filter((s) => s.trim()).length;
      case "paragraphs": return text.split(/\n\s*\n/).filter((s) => s.trim()).length;
      case "sms_segments": {
        const gsm = GSM.test(text);
        const len = gsm ? text.length : Array.from(text).length;
        const [one, many] = gsm ? [160, 153] : [70, 67];
        return len === 0 ? 0 : len <= one ? 1 : Math.ceil(len / many);
      }
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
