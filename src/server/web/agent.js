// The agent console: pick brand, channel and (optionally) mood, paste the
// customer's message, watch drafts stream in (POST /v1/drafts with
// "stream": true), then work with the checked drafts: tone score per goal,
// violations left, mechanical fixes highlighted in the text, a live length
// count against the channel's limit while editing, copy. Rewrite mode sends
// the agent's own draft to /v1/rewrite instead. /v1/triage runs beside the
// draft so the mood, language, priority and escalation flags show at once.
"use strict";

(() => {
  const { el, api, stream, showError, clearErrors, describe, measure, UNIT_WORDS, byteToIndex, fillSelect } = BV;
  const $ = (id) => document.getElementById(id);
  const channels = new Map();
  let last = null; // { path, body } of the last request, for regenerate / more
  let running = null; // AbortController of the running stream
  let draftCount = 0;

  function channelLimit() {
    const c = channels.get($("channel").value);
    return c && c.length ? c.length : null;
  }

  function countInto(node, text) {
    const lim = channelLimit();
    if (!lim) { node.textContent = ""; return; }
    const n = measure(text, lim.unit);
    node.textContent = n + " / " + lim.max + " " + (UNIT_WORDS[lim.unit] || lim.unit);
    node.classList.toggle("over", n > lim.max);
  }

  async function init() {
    try {
      const [brands, chans, meta] = await Promise.all([api("/v1/brands"), api("/v1/channels"), api("/assets/meta.json")]);
      fillSelect($("brand"), brands.brands.map((b) => [b.id, b.name]));
      for (const c of chans.channels) channels.set(c.id, c);
      fillSelect($("channel"), chans.channels.map((c) => [c.id, c.id.replace(/_/g, " ")]));
      fillSelect($("mood"), meta.moods.map((m) => [m, m]), "Detect from the message");
      $("status").textContent = "Ready. Fill in the message and press “Draft replies”.";
    } catch (e) {
      showError("Could not load brands and channels: " + describe(e));
    }
  }

  function parseHistory(text) {
    const turns = [];
    text.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      const m = line.match(/^\s*(customer|agent)\s*:\s*(.*)$/i);
      if (!m) throw new Error("Earlier turns, line " + (i + 1) + ": start it with “customer:” or “agent:”.");
      turns.push({ role: m[1].toLowerCase(), text: m[2] });
    });
    return turns;
  }

  function parseFacts(text) {
    return text.split("\n").filter((l) => l.trim()).map((line) => {
      const [t, url] = line.split("|").map((s) => s.trim());
      return url ? { text: t, url } : { text: t };
    });
  }

  function buildRequest() {
    const rewrite = $("mode-rewrite").checked;
    const body = { brand: $("brand").value, channel: $("channel").value };
    if ($("mood").value) body.mood = $("mood").value;
    const facts = parseFacts($("facts").value);
    if (facts.length) body.facts = facts;
    const n = parseInt($("n").value, 10);
    if (n > 1) body.n = n;
    const message = $("message").value;
    if (rewrite) {
      body.draft = $("own-draft").value;
      if (!body.draft.trim()) throw new Error("Rewrite mode: write your draft first.");
      if (message.trim()) body.message = message;
      return { path: "/v1/rewrite", body, message };
    }
    if (!message.trim()) throw new Error("Paste the customer's message first.");
    body.message = message;
    const history = parseHistory($("history").value);
    if (history.length) body.history = history;
    return { path: "/v1/drafts", body, message };
  }

  function showUnderstood(u) {
    if (u.mood) $("u-mood").textContent = typeof u.mood === "string" ? u.mood : u.mood.label + (u.mood.detected ? " (detected, " + Math.round(u.mood.confidence * 100) + "%)" : " (given)");
    if (u.language) $("u-language").textContent = u.language;
    if (u.priority) $("u-priority").textContent = u.priority;
    if (u.escalation) {
      const flags = u.escalation.map((f) => (typeof f === "string" ? f : f.kind));
      const dd = $("u-escalation");
      dd.replaceChildren(...(flags.length ? flags.map((f) => el("span", { class: "flag" }, f.replace(/_/g, " "))) : ["none"]));
    }
  }

  async function triage(message) {
    if (!message.trim()) return;
    try {
      const r = await api("/v1/triage", { json: { messages: [{ id: 1, text: message }] } });
      const t = r.results[0];
      showUnderstood({ mood: t.mood + " (" + Math.round(t.confidence * 100) + "%)", language: t.language, priority: t.priority, escalation: t.escalation });
    } catch (e) {
      showError("Triage failed: " + describe(e));
    }
  }

  function setBusy(busy) {
    $("go").disabled = busy;
    $("stop").disabled = !busy;
    $("regenerate").disabled = busy || !last;
    $("more").disabled = busy || !last;
    $("results").setAttribute("aria-busy", busy ? "true" : "false");
  }

  async function run(req, append) {
    clearErrors();
    last = req;
    if (!append) {
      $("drafts").replaceChildren();
      draftCount = 0;
    }
    $("streams").replaceChildren();
    setBusy(true);
    running = new AbortController();
    const boxes = new Map();
    $("status").textContent = "Drafting…";
    if (!append) triage(req.message);
    try {
      await stream(req.path, req.body, {
        understood: (u) => showUnderstood(u),
        token: (t) => {
          let box = boxes.get(t.candidate);
          if (!box) {
            box = el("pre", { class: "streaming", "aria-label": "Candidate " + (t.candidate + 1) + " as it is written" });
            boxes.set(t.candidate, box);
            $("streams").append(box);
          }
          box.textContent += t.text;
          $("status").textContent = "Writing candidate " + (t.candidate + 1) + "…";
        },
        drafts: (resp) => {
          $("streams").replaceChildren();
          showUnderstood(resp);
          for (const d of resp.drafts) $("drafts").append(draftCard(d, resp));
          const ms = resp.timings && resp.timings.total_ms ? " in " + (resp.timings.total_ms / 1000).toFixed(1) + " s" : "";
          $("status").textContent = resp.drafts.length + " draft" + (resp.drafts.length === 1 ? "" : "s") + ms + " · model " + resp.model + " · seed " + resp.seed;
        },
      }, running.signal);
    } catch (e) {
      if (e.name === "AbortError") $("status").textContent = "Stopped.";
      else {
        $("status").textContent = "No draft.";
        showError(describe(e));
      }
    } finally {
      running = null;
      setBusy(false);
    }
  }

  // Ranges to mark in the final text: applied fixes (where their new text
  // can be found) and the violations left (their byte spans). They may
  // overlap (a whole-text suggestion around an appended sign-off), so the
  // text is cut at every range edge and each piece wrapped in what covers it.
  function marks(d) {
    const text = d.text;
    const out = [];
    for (const f of d.fixes || []) {
      const fx = f.fix || {};
      let needle = null;
      if (fx.action === "replace" && fx.with && fx.with.trim()) needle = fx.with;
      if (fx.action === "append" && fx.text && fx.text.trim()) needle = fx.text.trim();
      if (!needle) continue;
      // later fixes may have changed its case ("a fix ships" → "A fix ships")
      const [hay, pin] = text.toLowerCase().length === text.length ? [text.toLowerCase(), needle.toLowerCase()] : [text, needle];
      const at = fx.action === "append" ? hay.lastIndexOf(pin) : hay.indexOf(pin);
      if (at >= 0) out.push({ start: at, end: at + needle.length, fix: true, title: "Fixed by " + f.check });
    }
    for (const v of d.violations || []) {
      if (!v.span || v.span.end <= v.span.start) continue;
      out.push({ start: byteToIndex(text, v.span.start), end: byteToIndex(text, v.span.end), fix: false, level: v.level, title: v.check + ": " + v.message });
    }
    return out;
  }

  function markedText(d) {
    const p = el("p", { class: "draft-text" });
    const ms = marks(d);
    const cuts = [...new Set([0, d.text.length, ...ms.flatMap((m) => [m.start, m.end])])].sort((a, b) => a - b);
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [a, b] = [cuts[i], cuts[i + 1]];
      const over = ms.filter((m) => m.start <= a && m.end >= b);
      let node = document.createTextNode(d.text.slice(a, b));
      const viol = over.find((m) => !m.fix);
      if (viol) node = el("span", { class: "viol " + viol.level, title: over.filter((m) => !m.fix).map((m) => m.title).join("\n") }, node);
      const fix = over.find((m) => m.fix);
      if (fix) node = el("mark", { class: "fixed", title: fix.title }, node);
      p.append(node);
    }
    return p;
  }

  function fixLabel(f) {
    const x = f.fix || {};
    switch (x.action) {
      case "replace": return x.with ? "replaced with “" + x.with + "”" : "inserted";
      case "remove": return "removed a part";
      case "append": return "added “" + x.text + "”";
      case "truncate": return "shortened to " + x.max + " " + (UNIT_WORDS[x.unit] || x.unit);
      default: return x.action || "fixed";
    }
  }

  function scoreBars(score) {
    const parts = Object.entries(score.parts || {});
    return el("dl", { class: "score-parts" }, parts.map(([goal, v]) => [
      el("dt", {}, goal.replace(/_/g, " ")),
      el("dd", {}, el("meter", { min: 0, max: 100, low: 50, high: 75, optimum: 100, value: v, "aria-label": goal + " " + Math.round(v) + " of 100" }), " " + Math.round(v)),
    ]));
  }

  function band(v) { return v >= 75 ? "green" : v >= 50 ? "yellow" : "red"; }

  function draftCard(d, resp) {
    const i = ++draftCount;
    const editId = "edit-" + i;
    const countId = "count-" + i;
    const edit = el("textarea", { id: editId, rows: 4, "aria-describedby": countId, class: "edit" });
    edit.value = d.text;
    const count = el("p", { id: countId, class: "count muted", "aria-live": "polite" });
    countInto(count, d.text);
    edit.addEventListener("input", () => countInto(count, edit.value));
    const copied = el("span", { class: "muted", role: "status" });
    const copy = el("button", { type: "button", class: "copy", onclick: async () => {
      try {
        await navigator.clipboard.writeText(edit.value);
      } catch (_) {
        edit.select();
        document.execCommand("copy");
      }
      copied.textContent = "Copied.";
      setTimeout(() => { copied.textContent = ""; }, 2000);
    } }, "Copy");
    const viols = d.violations || [];
    const fixes = d.fixes || [];
    return el("li", { class: "draft", "data-overall": d.score.overall },
      el("div", { class: "draft-head" },
        el("h3", {}, "Draft " + i),
        el("span", { class: "score " + band(d.score.overall), title: "Tone score, 0–100" }, "Tone " + Math.round(d.score.overall)),
        d.fallback ? el("span", { class: "flag" }, "approved fallback") : null,
        d.seed !== null && d.seed !== undefined ? el("span", { class: "muted" }, "seed " + d.seed) : null),
      markedText(d),
      scoreBars(d.score),
      el("div", { class: "lists" },
        el("div", {}, el("h4", {}, "Fixes applied (" + fixes.length + ")"),
          fixes.length ? el("ul", {}, fixes.map((f) => el("li", {}, el("code", {}, f.check), " ", fixLabel(f)))) : el("p", { class: "muted" }, "none")),
        el("div", {}, el("h4", {}, "Still to look at (" + viols.length + ")"),
          viols.length ? el("ul", {}, viols.map((v) => el("li", { class: v.level }, el("code", {}, v.check), " " + v.message))) : el("p", { class: "muted" }, "nothing"))),
      el("label", { for: editId }, "Edit draft " + i + " before sending"),
      edit,
      el("div", { class: "actions" }, count, copy, copied));
  }

  function again(extra) {
    if (!last) return;
    const body = Object.assign({}, last.body, extra, { seed: Math.floor(Math.random() * 2 ** 31) });
    return { path: last.path, body, message: last.message };
  }

  document.addEventListener("DOMContentLoaded", () => {
    init();
    $("request").addEventListener("submit", (e) => {
      e.preventDefault();
      let req;
      try { req = buildRequest(); } catch (err) { clearErrors(); showError(err.message); return; }
      run(req, false);
    });
    $("request").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("request").requestSubmit(); }
    });
    $("stop").addEventListener("click", () => running && running.abort());
    $("regenerate").addEventListener("click", () => run(again({}), false));
    $("more").addEventListener("click", () => run(again({ n: Math.max(2, parseInt($("n").value, 10) || 1) }), true));
    for (const r of document.querySelectorAll("input[name=mode]")) {
      r.addEventListener("change", () => {
        const rewrite = $("mode-rewrite").checked;
        $("own-draft-box").hidden = !rewrite;
        $("go").textContent = rewrite ? "Rewrite my draft" : "Draft replies";
      });
    }
    const own = () => countInto($("own-count"), $("own-draft").value);
    $("own-draft").addEventListener("input", own);
    $("channel").addEventListener("change", () => {
      own();
      for (const card of document.querySelectorAll(".draft")) {
        const t = card.querySelector("textarea");
        countInto(card.querySelector(".count"), t.value);
      }
    });
  });
})();
