// The reviewer console: pick an eval run (GET /v1/runs), then
// - score its drafts one by one, 1–5 per goal plus a comment, from the
//   keyboard (1–5, ↑/↓, j/k, Enter), stored with POST /v1/reviews as
//   {run_id, case_id: "<case>[#repeat]", draft_id: "final", scores,
//   auto_scores} — auto_scores are the run's own tone score, so the
//   statistics can set the machine against the people;
// - or judge blind A/B pairs between two runs: the side each run lands on
//   is random per case and stored as `run_a` = the run shown as A;
// - or read the dashboard: agreement statistics (GET /v1/reviews/stats) and
//   two SVG charts drawn here (no chart library: the console is offline).
// Drafts the reviewer already judged are skipped when the queue is built.
"use strict";

(() => {
  const { el, svg, api, showError, clearErrors, describe, fillSelect, num } = BV;
  const $ = (id) => document.getElementById(id);
  const REVIEWER = "brandvoice.reviewer";
  let goals = ["overall"];
  let runs = [];
  const state = { mode: "score", run: null, runB: null, items: [], index: 0, done: new Set(), goal: 0, scores: {} };

  const itemId = (r) => (r.repeat ? r.case_id + "#" + r.repeat : r.case_id);

  async function init() {
    $("reviewer").value = localStorage.getItem(REVIEWER) || "";
    try {
      const [list, meta] = await Promise.all([api("/v1/runs"), api("/assets/meta.json")]);
      goals = meta.goals;
      runs = list.runs;
      if (!runs.length) {
        showError("No eval runs found. Run `brandvoice eval run SUITE` (or set [eval] runs_dir / BRANDVOICE_RUNS_DIR) and reload.");
      }
      const items = runs.map((r) => [r.run_id, r.run_id + (r.summary && r.summary.cases !== undefined ? " · " + r.summary.cases + " cases" : "")]);
      fillSelect($("run"), items, "Choose a run");
      fillSelect($("run-b"), items, "Choose the other run");
    } catch (e) {
      showError("Could not list the eval runs: " + describe(e));
    }
  }

  function mode() { return document.querySelector("input[name=mode]:checked").value; }

  function showRunSummary() {
    const r = runs.find((x) => x.run_id === $("run").value);
    const link = $("report-link");
    link.hidden = !(r && r.has_report);
    if (r) link.href = "/v1/runs/" + encodeURIComponent(r.run_id) + "/report";
    const s = r && r.summary;
    $("run-summary").textContent = s ? [s.model, s.cases + " cases", "pass " + Math.round((s.pass_rate || 0) * 100) + "%", "tone " + num(s.mean_tone, 1)].filter(Boolean).join(" · ") : r && r.problem ? r.problem : "";
  }

  async function start() {
    clearErrors();
    const reviewer = $("reviewer").value.trim();
    const run = $("run").value;
    state.mode = mode();
    if (!run) return showError("Choose an eval run first.");
    if (state.mode !== "dash" && !reviewer) return showError("Enter your name first; reviews are stored under it.");
    localStorage.setItem(REVIEWER, reviewer);
    $("queue").hidden = true;
    $("dashboard").hidden = true;
    if (state.mode === "dash") return dashboard(run);
    try {
      const detail = await api("/v1/runs/" + encodeURIComponent(run));
      for (const p of detail.problems || []) showError("Run " + run + ": " + p);
      const mine = (await api("/v1/reviews?run=" + encodeURIComponent(run))).filter((r) => r.reviewer_id === reviewer);
      state.run = run;
      if (state.mode === "score") {
        state.items = detail.results.filter((r) => r.draft && !r.error);
        state.done = new Set(mine.filter((r) => r.kind === "review").map((r) => r.case_id));
      } else {
        const runB = $("run-b").value;
        if (!runB || runB === run) return showError("Choose a second, different run to compare with.");
        const other = await api("/v1/runs/" + encodeURIComponent(runB));
        const byId = new Map(other.results.filter((r) => r.draft).map((r) => [itemId(r), r]));
        state.runB = runB;
        state.items = detail.results.filter((r) => r.draft && byId.has(itemId(r))).map((r) => {
          const flip = Math.random() < 0.5;
          const mineSide = { run, text: r.draft };
          const theirs = { run: runB, text: byId.get(itemId(r)).draft };
          return Object.assign({}, r, { sides: flip ? [theirs, mineSide] : [mineSide, theirs] });
        });
        state.done = new Set(mine.filter((r) => r.kind === "pairwise" && [r.run_a, r.run_b].includes(runB)).map((r) => r.case_id));
        if (!state.items.length) return showError("The two runs share no cases with drafts.");
      }
      const first = state.items.findIndex((r) => !state.done.has(itemId(r)));
      state.index = first < 0 ? 0 : first;
      $("queue").hidden = false;
      $("score-form").hidden = state.mode !== "score";
      $("ab-form").hidden = state.mode !== "ab";
      show();
    } catch (e) {
      showError(describe(e));
    }
  }

  function progress() {
    const total = state.items.length;
    const done = state.items.filter((r) => state.done.has(itemId(r))).length;
    $("progress").max = Math.max(total, 1);
    $("progress").value = done;
    $("progress-text").textContent = done + " of " + total + " done" + (done === total && total ? " — queue finished" : "");
  }

  function goalRows() {
    const box = $("goals");
    box.replaceChildren();
    goals.forEach((g, gi) => {
      const fs = el("fieldset", { class: "goal" + (gi === state.goal ? " current" : ""), "data-goal": g },
        el("legend", {}, g.replace(/_/g, " ")));
      for (let v = 1; v <= 5; v++) {
        const id = "g-" + g + "-" + v;
        const input = el("input", { type: "radio", name: "g-" + g, id, value: v, checked: state.scores[g] === v });
        input.addEventListener("change", () => { state.scores[g] = v; state.goal = gi; markGoal(); });
        fs.append(el("label", { for: id, class: "pick" }, input, String(v)));
      }
      box.append(fs);
    });
  }

  function markGoal() {
    document.querySelectorAll("#goals fieldset").forEach((f, i) => f.classList.toggle("current", i === state.goal));
  }

  function show() {
    progress();
    const r = state.items[state.index];
    const box = $("item");
    box.replaceChildren();
    if (!r) { box.append(el("p", {}, "Nothing to review in this run.")); return; }
    const id = itemId(r);
    $("item-title").textContent = (state.mode === "ab" ? "Compare " : "Draft ") + (state.index + 1) + " of " + state.items.length + (state.done.has(id) ? " (done)" : "");
    box.append(
      el("p", { class: "muted" }, [r.suite, id, r.brand, r.channel, r.mood_expected || r.mood_detected].filter(Boolean).join(" · ")),
      el("h3", {}, "Customer"),
      el("blockquote", { class: "message" }, r.message || "(no message)"));
    if (state.mode === "score") {
      box.append(el("h3", {}, "Draft"), el("p", { class: "draft-text", id: "draft-under-review" }, r.draft));
      state.scores = {};
      state.goal = 0;
      goalRows();
      $("comment").value = "";
    } else {
      $("ab-a").textContent = r.sides[0].text;
      $("ab-b").textContent = r.sides[1].text;
      $("ab-comment").value = "";
    }
  }

  function move(step) {
    if (!state.items.length) return;
    state.index = Math.min(state.items.length - 1, Math.max(0, state.index + step));
    show();
  }

  function nextOpen() {
    const n = state.items.length;
    for (let k = 1; k <= n; k++) {
      const i = (state.index + k) % n;
      if (!state.done.has(itemId(state.items[i]))) { state.index = i; return show(); }
    }
    show();
  }

  function autoScores(r) {
    const s = r.score || {};
    const out = {};
    if (typeof s.overall === "number") out.overall = s.overall;
    for (const [k, v] of Object.entries(s.parts || {})) if (goals.includes(k) && typeof v === "number") out[k] = v;
    return out;
  }

  async function saveScore() {
    const r = state.items[state.index];
    if (!r) return;
    const scores = Object.fromEntries(Object.entries(state.scores).filter(([, v]) => v));
    if (!Object.keys(scores).length) return showError("Give at least one goal a score from 1 to 5 first.");
    const body = {
      kind: "review", run_id: state.run, case_id: itemId(r), draft_id: "final", draft_text: r.draft,
      reviewer_id: $("reviewer").value.trim(), scores, auto_scores: autoScores(r), comment: $("comment").value,
    };
    await submit(body, itemId(r));
  }

  async function savePair(pref) {
    const r = state.items[state.index];
    if (!r) return;
    const body = {
      kind: "pairwise", run_a: r.sides[0].run, run_b: r.sides[1].run, case_id: itemId(r), preferred: pref,
      reviewer_id: $("reviewer").value.trim(), comment: $("ab-comment").value,
    };
    await submit(body, itemId(r));
  }

  async function submit(body, id) {
    clearErrors();
    try {
      await api("/v1/reviews", { json: body });
      state.done.add(id);
      nextOpen();
      $("progress-text").textContent += " · saved " + id;
    } catch (e) {
      if (e.type === "conflict") {
        state.done.add(id);
        showError("You already judged " + id + "; moving on.");
        nextOpen();
      } else showError("Not saved: " + describe(e));
    }
  }

  function onKey(e) {
    if ($("queue").hidden || e.ctrlKey || e.metaKey || e.altKey || document.querySelector("dialog[open]")) return;
    const t = e.target;
    const typing = t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "radio") || t.tagName === "SELECT");
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    if (state.mode === "score") {
      if (/^[1-5]$/.test(e.key)) {
        const g = goals[state.goal];
        state.scores[g] = Number(e.key);
        const input = $("g-" + g + "-" + e.key);
        if (input) input.checked = true;
        state.goal = Math.min(goals.length - 1, state.goal + 1);
        markGoal();
        e.preventDefault();
      } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        state.goal = Math.min(goals.length - 1, Math.max(0, state.goal + (e.key === "ArrowDown" ? 1 : -1)));
        markGoal();
        e.preventDefault();
      } else if (e.key === "Enter") {
        e.preventDefault();
        saveScore();
      }
    } else if (state.mode === "ab") {
      const pref = { a: "a", b: "b", t: "tie" }[e.key];
      if (pref) { e.preventDefault(); savePair(pref); }
    }
    if (e.key === "j") { e.preventDefault(); move(1); }
    if (e.key === "k") { e.preventDefault(); move(-1); }
  }

  // ---- dashboard -------------------------------------------------------
  function est(e) { return e && e.value !== null && e.value !== undefined ? e.value : null; }

  async function dashboard(run) {
    $("dashboard").hidden = false;
    try {
      const [stats, reviews] = await Promise.all([
        api("/v1/reviews/stats?run=" + encodeURIComponent(run)),
        api("/v1/reviews?run=" + encodeURIComponent(run)),
      ]);
      const n = reviews.filter((r) => r.kind === "review").length;
      $("dash-note").textContent = n + " reviews of run " + run + ". Krippendorff's α and Cohen's κ need two or more reviewers on the same drafts.";
      agreementTable(stats);
      agreementChart(stats);
      scatter(reviews.filter((r) => r.kind === "review"));
      pairwiseTable(stats.pairwise || []);
    } catch (e) {
      showError("Could not load the dashboard: " + describe(e));
    }
  }

  function agreementTable(stats) {
    const t = $("agreement-table");
    const cap = t.querySelector("caption");
    t.replaceChildren(cap);
    const head = ["Goal", "Drafts", "Reviewers", "Ratings", "α ordinal", "α interval", "κ (quadratic)", "Auto ρ", "Human ceiling ρ"];
    t.append(el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))));
    const body = el("tbody");
    for (const g of stats.goals) {
      const a = g.automatic || {};
      body.append(el("tr", {},
        el("th", { scope: "row" }, g.goal.replace(/_/g, " ")),
        el("td", {}, g.units), el("td", {}, g.raters), el("td", {}, g.ratings),
        el("td", { title: (g.alpha_ordinal && g.alpha_ordinal.undefined) || "" }, num(est(g.alpha_ordinal))),
        el("td", { title: (g.alpha_interval && g.alpha_interval.undefined) || "" }, num(est(g.alpha_interval))),
        el("td", {}, num(g.kappa && g.kappa.mean_quadratic)),
        el("td", {}, num(est(a.spearman))),
        el("td", {}, num(est(a.human_ceiling_spearman)))));
    }
    if (!stats.goals.length) body.append(el("tr", {}, el("td", { colspan: head.length }, "No reviews for this run yet.")));
    t.append(body);
  }

  // Grouped bars, −1..1: automatic ρ and the human ceiling per goal.
  function agreementChart(stats) {
    const rows = stats.goals.map((g) => ({ goal: g.goal, auto: est(g.automatic && g.automatic.spearman), human: est(g.automatic && g.automatic.human_ceiling_spearman) }));
    const W = 520, H = 240, L = 40, B = 50, T = 10;
    const y = (v) => T + (H - T - B) * (1 - (v + 1) / 2);
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "Spearman correlation of the automatic score with reviewers, and the human ceiling, per goal", class: "chart" });
    for (const v of [-1, -0.5, 0, 0.5, 1]) {
      s.append(svg("line", { x1: L, x2: W - 5, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }),
        svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick", text: String(v) }));
    }
    const slot = (W - L - 10) / Math.max(rows.length, 1);
    rows.forEach((r, i) => {
      const x0 = L + 5 + i * slot;
      const bw = Math.min(18, slot / 3);
      [["auto", r.auto], ["human", r.human]].forEach(([k, v], j) => {
        if (v === null) return;
        const top = Math.min(y(v), y(0));
        s.append(svg("rect", { x: x0 + j * (bw + 2), y: top, width: bw, height: Math.max(1, Math.abs(y(v) - y(0))), class: "bar " + k },
          svg("title", { text: r.goal + " " + (k === "auto" ? "automatic" : "human ceiling") + ": " + v.toFixed(2) })));
      });
      s.append(svg("text", { x: x0 + bw, y: H - B + 16, "text-anchor": "middle", class: "tick", text: r.goal.replace(/_/g, " ") }));
    });
    s.append(svg("rect", { x: L + 5, y: H - 18, width: 10, height: 10, class: "bar auto" }), svg("text", { x: L + 20, y: H - 9, class: "tick", text: "automatic" }),
      svg("rect", { x: L + 100, y: H - 18, width: 10, height: 10, class: "bar human" }), svg("text", { x: L + 115, y: H - 9, class: "tick", text: "human ceiling" }));
    if (!rows.some((r) => r.auto !== null || r.human !== null)) {
      s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty", text: "Not enough reviews with automatic scores yet" }));
    }
    $("chart-agreement").replaceChildren(s);
  }

  // Scatter: automatic overall (x, 0–100) against the human overall (y, 1–5).
  function scatter(reviews) {
    const pts = reviews.filter((r) => r.scores && r.scores.overall && r.auto_scores && typeof r.auto_scores.overall === "number");
    const W = 520, H = 240, L = 40, B = 35, T = 10, R = 10;
    const x = (v) => L + (W - L - R) * v / 100;
    const y = (v) => T + (H - T - B) * (5 - v) / 4;
    const s = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": pts.length + " reviews: automatic overall score against the reviewer's overall score", class: "chart" });
    for (let v = 1; v <= 5; v++) s.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }), svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick", text: String(v) }));
    for (let v = 0; v <= 100; v += 25) s.append(svg("text", { x: x(v), y: H - B + 16, "text-anchor": "middle", class: "tick", text: String(v) }));
    s.append(svg("text", { x: (W + L) / 2, y: H - 4, "text-anchor": "middle", class: "tick", text: "automatic overall" }));
    pts.forEach((r, i) => {
      const jitter = ((i * 37) % 11 - 5) / 40;
      s.append(svg("circle", { cx: x(r.auto_scores.overall), cy: y(r.scores.overall + jitter), r: 4, class: "dot" },
        svg("title", { text: r.case_id + " · " + r.reviewer_id + ": human " + r.scores.overall + ", automatic " + r.auto_scores.overall.toFixed(1) })));
    });
    if (!pts.length) s.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty", text: "No reviews with an overall score yet" }));
    $("chart-scatter").replaceChildren(s);
  }

  function pairwiseTable(rows) {
    const t = $("pairwise-table");
    const cap = t.querySelector("caption");
    t.replaceChildren(cap);
    t.append(el("thead", {}, el("tr", {}, ["Run X", "Run Y", "X wins", "Y wins", "Ties", "X win rate"].map((h) => el("th", { scope: "col" }, h)))));
    const body = el("tbody");
    for (const p of rows) body.append(el("tr", {}, el("td", {}, p.run_x), el("td", {}, p.run_y), el("td", {}, p.x_wins), el("td", {}, p.y_wins), el("td", {}, p.ties), el("td", {}, BV.pct(p.x_win_rate))));
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "No A/B judgements involve this run yet.")));
    t.append(body);
  }

  document.addEventListener("DOMContentLoaded", () => {
    init();
    $("setup").addEventListener("submit", (e) => { e.preventDefault(); start(); });
    $("run").addEventListener("change", showRunSummary);
    for (const r of document.querySelectorAll("input[name=mode]")) {
      r.addEventListener("change", () => {
        $("run-b-box").hidden = mode() !== "ab";
        $("start").textContent = mode() === "dash" ? "Show dashboard" : "Start";
      });
    }
    $("score-form").addEventListener("submit", (e) => { e.preventDefault(); saveScore(); });
    $("prev").addEventListener("click", () => move(-1));
    $("next").addEventListener("click", () => move(1));
    $("ab-prev").addEventListener("click", () => move(-1));
    $("ab-next").addEventListener("click", () => move(1));
    for (const b of document.querySelectorAll("[data-pref]")) b.addEventListener("click", () => savePair(b.dataset.pref));
    document.addEventListener("keydown", onKey);
  });
})();
