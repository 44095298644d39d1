// The taskbridge dashboard. Every value shown comes from the legacy file or
// the API and is untrusted: it is written with textContent or as an
// attribute value, never parsed as markup (no innerHTML anywhere). The admin
// token lives in this script's memory only: never in a cookie, storage or URL.
"use strict";
(() => {
  const POLL_MS = 2000;
  const TOKEN_HEADER = "X-Taskbridge-Admin-Token";
  const SVG = "http://www.w3.org/2000/svg";
  let token = "";
  let quarantineOffset = 0;
  const quarantineLimit = 25;
  let quarantineShown = "";
  const cards = new Map();
  document.body.dataset.loadId = String(Math.random()).slice(2);

  const $ = (id) => document.getElementById(id);
  // One page per queue (?queue=NAME); without it, a file with several
  // queues shows the overview of all of them.
  const QUEUE = new URLSearchParams(location.search).get("queue");
  const q = (url) => QUEUE === null ? url : url + (url.includes("?") ? "&" : "?") + "queue=" + encodeURIComponent(QUEUE);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function age(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 1) return Math.round(seconds * 1000) + "ms";
    if (seconds < 120) return seconds.toFixed(1) + "s";
    if (seconds < 7200) return Math.round(seconds / 60) + "m";
    return (seconds / 3600).toFixed(1) + "h";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "-";
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1048576).toFixed(1) + " MiB";
  }

  function say(text, kind) {
    const m = $("message");
    m.textContent = text;
    m.dataset.kind = kind || "info";
    m.hidden = false;
  }

  async function getJSON(url) {
    const r = await fetch(q(url), { cache: "no-store" });
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }

  async function act(path, body) {
    if (!token) {
      say("Read-only: paste the admin token (the file named by [bridge] admin_token_file) to use actions.", "error");
      return null;
    }
    const r = await fetch(q(path), {
      method: "POST",
      headers: { "Content-Type": "application/json", [TOKEN_HEADER]: token },
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await r.json(); } catch (e) { answer = { error: "HTTP " + r.status }; }
    if (!r.ok) {
      say("Refused (HTTP " + r.status + "): " + (answer.error || "unknown error"), "error");
      if (r.status === 401) setToken("");
      return null;
    }
    return answer;
  }

  function setToken(value) {
    token = value;
    $("token").value = "";
    $("token-state").textContent = token ? "actions enabled" : "read-only";
    document.body.dataset.actions = token ? "enabled" : "read-only";
  }

  // ---- per-type cards -------------------------------------------------------

  const COUNTERS = [
    ["queued", "queued"], ["in_flight", "in flight"], ["forwarded", "forwarded"], ["mirrored", "mirrored"],
    ["quarantined", "quarantined"], ["collapsed", "collapsed"], ["lag", "lag"], ["drift", "parity drift"],
    ["left_to_legacy", "left to legacy"], ["percent", "bridge share"],
  ];

  let percentModes = ["forward"];

  function makeCard(type, stages, modes) {
    const card = el("article", { class: "card", "data-type": type });
    const title = el("h2", { text: type });
    const mapped = el("span", { class: "muted" });
    card.append(el("div", { class: "card-head" }, title, mapped));
    const stageList = el("ol", { class: "stages", "aria-label": "stage" });
    for (const s of stages) stageList.append(el("li", { "data-stage": s, text: s }));
    card.append(stageList);
    const counters = el("dl", { class: "counters" });
    const fields = {};
    for (const [key, label] of COUNTERS) {
      const dd = el("dd", { "data-field": key, text: "-" });
      fields[key] = dd;
      counters.append(el("div", {}, el("dt", { text: label }), dd));
    }
    card.append(counters);
    const reverse = el("p", { class: "reverse", "data-role": "reverse", hidden: true });
    card.append(reverse);
    const chart = el("div", { class: "chart" });
    card.append(el("h3", { text: "Forwarded and mirrored per minute, last hour" }), chart,
      el("div", { class: "legend" }, el("span", { class: "fwd", text: "forwarded" }),
        el("span", { class: "mir", text: "mirrored" }), el("span", { class: "peak" })));
    const shadow = el("section", { class: "shadow", "data-role": "shadow", hidden: true });
    const shadowFacts = el("p", { "data-role": "shadow-facts" });
    const shadowChart = el("div", { class: "chart" });
    const shadowFields = el("ul", { class: "plain", "data-role": "shadow-fields" });
    const shadowDiff = el("div", { class: "diff", "data-role": "shadow-diff" });
    shadow.append(el("h3", { text: "Shadow: legacy and TaskManager results compared" }), shadowFacts,
      el("h3", { text: "Matched and mismatched per minute, last hour" }), shadowChart,
      el("div", { class: "legend" }, el("span", { class: "fwd", text: "matched" }),
        el("span", { class: "bad-line", text: "mismatched" })),
      el("div", { class: "two" }, el("div", {}, el("h3", { text: "Differing fields" }), shadowFields),
        el("div", {}, el("h3", { text: "An example" }), shadowDiff)));
    card.append(shadow);
    const dry = el("div", {});
    const checks = el("ul", { class: "plain checks" });
    card.append(el("div", { class: "two" },
      el("div", {}, el("h3", { text: "Dry-run verdicts" }), dry),
      el("div", {}, el("h3", { text: "Retire-check" }), checks, el("p", { class: "muted", "data-role": "checked" }))));
    const audit = el("tbody", {});
    card.append(el("h3", { text: "Audit trail" }), el("div", { class: "scroll" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", { text: "when" }), el("th", { text: "what" }),
        el("th", { text: "by" }), el("th", { text: "why" }))), audit)));
    const select = el("select", { "aria-label": "new mode", "data-role": "mode" });
    for (const s of modes) select.append(el("option", { value: s, text: s }));
    const percent = el("input", { type: "number", min: 1, max: 100, value: 100, "aria-label": "percent",
      title: "forward: the share of new rows the bridge takes; shadow: the share of rows compared",
      "data-role": "percent", class: "percent" });
    const reason = el("input", { type: "text", placeholder: "reason (audited)", "data-role": "reason" });
    const change = el("button", { type: "button", class: "primary", "data-role": "cutover", text: "Change mode" });
    const retryAll = el("button", { type: "button", "data-role": "retry-type", text: "Retry quarantined rows" });
    change.addEventListener("click", async () => {
      const body = { task_type: type, mode: select.value, reason: reason.value };
      if (percentModes.includes(select.value)) body.percent = Number(percent.value || 100);
      const answer = await act("/dashboard/actions/cutover", body);
      if (answer) { say(type + ": " + answer.from + " -> " + answer.to); reason.value = ""; refresh(); }
    });
    retryAll.addEventListener("click", async () => {
      const answer = await act("/dashboard/actions/quarantine-retry", { task_type: type });
      if (answer) { say(type + ": released " + answer.released.length + " row(s) for another attempt"); refresh(); }
    });
    select.addEventListener("change", () => { percent.hidden = !percentModes.includes(select.value); });
    card.append(el("div", { class: "actions" }, select, percent, reason, change, retryAll));
    return { card, mapped, stageList, fields, chart, dry, checks, audit, select, percent, retryAll, reverse,
      shadow, shadowFacts, shadowChart, shadowFields, shadowDiff, shownStage: null };
  }

  function setField(dd, value, text, alert) {
    dd.dataset.value = value === null || value === undefined ? "" : String(value);
    dd.textContent = text === undefined ? String(value) : text;
    dd.classList.toggle("alert", !!alert);
  }

  function drawChart(container, series) {
    const fwd = series ? series.forwarded : new Array(60).fill(0);
    const mir = series ? series.mirrored : new Array(60).fill(0);
    return drawLines(container, fwd, mir, "#2858c5", "#1f9d6b",
      "forwarded " + fwd.reduce((a, b) => a + b, 0) + ", mirrored " + mir.reduce((a, b) => a + b, 0) +
      " in the last hour");
  }

  // Two per-minute series over the last hour; `first` is drawn on top.
  function drawLines(container, first, second, firstColor, secondColor, summary) {
    const w = 600, h = 110, pad = 4;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + (h + 14));
    svg.setAttribute("role", "img");
    const fwd = first, mir = second;
    const peak = Math.max(1, ...fwd, ...mir);
    const line = (values, color) => {
      const p = document.createElementNS(SVG, "polyline");
      const step = (w - 2 * pad) / Math.max(1, values.length - 1);
      p.setAttribute("points", values.map((v, i) =>
        (pad + i * step).toFixed(1) + "," + (pad + (h - 2 * pad) * (1 - v / peak)).toFixed(1)).join(" "));
      p.setAttribute("fill", "none");
      p.setAttribute("stroke", color);
      p.setAttribute("stroke-width", "2");
      p.setAttribute("vector-effect", "non-scaling-stroke");
      return p;
    };
    const base = document.createElementNS(SVG, "line");
    for (const [k, v] of [["x1", 0], ["x2", w], ["y1", h - pad], ["y2", h - pad], ["stroke", "#dde1e7"]]) {
      base.setAttribute(k, v);
    }
    const label = (x, anchor, text) => {
      const t = document.createElementNS(SVG, "text");
      t.setAttribute("x", x); t.setAttribute("y", h + 12); t.setAttribute("font-size", "11");
      t.setAttribute("fill", "#5d6778"); t.setAttribute("text-anchor", anchor);
      t.textContent = text;
      return t;
    };
    const title = document.createElementNS(SVG, "title");
    title.textContent = summary;
    svg.append(title, base, line(mir, secondColor), line(fwd, firstColor), label(0, "start", "-60 min"),
      label(w, "end", "now"));
    container.replaceChildren(svg);
    return peak;
  }

  function renderType(t, row, stages, modes) {
    let c = cards.get(t.task_type);
    if (!c) {
      c = makeCard(t.task_type, stages, modes);
      cards.set(t.task_type, c);
      $("types").append(c.card);
    }
    const note = row.mode === "reverse" ? "reverse: TaskManager producers, legacy workers" : "";
    c.mapped.textContent = [note, row.mapped ? (row.file_mode && row.file_mode !== row.mode
      ? "bridge.conf says " + row.file_mode : "") : "not mapped in bridge.conf"].filter((x) => x).join("; ");
    const at = stages.indexOf(row.mode);
    c.card.dataset.stage = row.mode;
    c.card.dataset.percent = String(row.percent);
    for (const li of c.stageList.children) {
      const i = stages.indexOf(li.dataset.stage);
      li.className = i === at ? "current" : (i < at ? "done" : "");
      li.textContent = li.dataset.stage + (li.dataset.stage === row.mode && percentModes.includes(row.mode) &&
        row.percent < 100 ? " " + row.percent + "%" : "");
    }
    c.stageList.classList.toggle("elsewhere", at < 0);
    const shown = row.mode + ":" + row.percent;
    if (c.shownStage !== shown) {
      c.select.value = row.mode;
      c.percent.value = percentModes.includes(row.mode) ? row.percent : 100;
      c.percent.hidden = !percentModes.includes(row.mode);
      c.shownStage = shown;
    }
    setField(c.fields.queued, row.queued);
    setField(c.fields.in_flight, row.in_flight);
    setField(c.fields.forwarded, row.forwarded);
    setField(c.fields.mirrored, row.mirrored);
    setField(c.fields.quarantined, row.quarantined, undefined, row.quarantined > 0);
    setField(c.fields.collapsed, row.collapsed);
    setField(c.fields.lag, row.oldest_unforwarded_age_seconds, age(row.oldest_unforwarded_age_seconds),
      row.oldest_unforwarded_age_seconds > 60);
    setField(c.fields.drift, row.live_parity_findings, undefined, row.live_parity_findings > 0);
    setField(c.fields.left_to_legacy, row.left_to_legacy);
    const reverseRows = row.reverse_held + row.reverse_done + row.reverse_conflicts + row.reverse_lost;
    c.reverse.hidden = row.mode !== "reverse" && reverseRows === 0;
    c.reverse.textContent = "Reverse (TaskManager tasks run by legacy workers): " + row.reverse_held +
      " held (" + row.reverse_completing + " reporting back), " + row.reverse_done + " done, " +
      row.reverse_conflicts + " conflicts (TaskManager refused the outcome), " + row.reverse_lost + " rows lost";
    c.reverse.classList.toggle("bad", row.reverse_conflicts > 0);
    setField(c.fields.percent, row.percent, row.percent + "%");
    // In shadow the share is the sample compared; the bridge takes no row.
    c.fields.percent.previousSibling.textContent = row.mode === "shadow" ? "shadow sample" : "bridge share";
    renderShadow(c, row.shadow);
    const peak = drawChart(c.chart, t.series);
    c.card.querySelector(".peak").textContent = "peak " + peak + "/min";
    const dry = [el("p", { text: "would forward " + row.dry_run_would_forward + ", would reject " +
      row.dry_run_would_reject })];
    if (t.dry_run_reasons.length) {
      const ul = el("ul", { class: "plain" });
      for (const r of t.dry_run_reasons) ul.append(el("li", { text: r.count + " x " + r.reason }));
      dry.push(ul);
    }
    c.dry.replaceChildren(...dry);
    const checks = [];
    for (const k of (t.retire_check ? t.retire_check.checks : [])) {
      checks.push(el("li", { "data-ok": k.ok ? "true" : "false" }, k.check, el("span", { class: "evidence",
        text: k.evidence })));
    }
    c.checks.replaceChildren(...checks);
    c.card.querySelector("[data-role=checked]").textContent = t.retire_check
      ? "checked " + t.retire_check.checked_at.replace("T", " ").slice(11, 19) + " UTC, quiet period 24h" : "";
    const rows = t.audit.map((a) => el("tr", {},
      el("td", { text: a.at.replace("T", " ").slice(0, 19) }),
      el("td", { text: a.action.startsWith("cutover") ? (a.from || "off") + " -> " + a.to +
        (percentModes.includes(a.to) && a.percent !== null && a.percent < 100 ? " " + a.percent + "%" : "") +
        (a.action === "cutover-forced" ? " (forced past its gate)" : "") : a.action }),
      el("td", { text: (a.actor || "?") + (a.host ? " @ " + a.host : "") }),
      el("td", { text: a.reason || "" })));
    c.audit.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, class: "muted",
      text: "no changes recorded" }))]));
    c.retryAll.disabled = row.quarantined === 0;
  }

  // The shadow stage of a type: figures, the gate, a chart, the differing
  // fields and one example side by side. Values are text, never markup.
  function renderShadow(c, s) {
    c.shadow.hidden = !s;
    if (!s) return;
    const rate = s.match_rate === null ? "-" : (s.match_rate * 100).toFixed(1) + "%";
    c.shadowFacts.textContent = "match rate " + rate + " of " + s.compared + " compared (" + s.matched +
      " matched, " + s.mismatched + " mismatched: value " + s.mismatched_value + ", legacy failed only " +
      s.legacy_failed_only + ", TaskManager failed only " + s.taskmanager_failed_only + "); " + s.pending +
      " pending, " + s.expired + " expired. Gate: " + (s.gate.passes ? "passes" : "not met") + " (" +
      s.gate.recent_matched + " of the last " + s.gate.recent_compared + " matched; needs " + s.gate.min_compared +
      " at " + (s.gate.min_match * 100).toFixed(1) + "%)";
    c.shadow.dataset.compared = String(s.compared);
    c.shadow.dataset.matchRate = s.match_rate === null ? "" : String(s.match_rate);
    const now = Math.floor(Date.now() / 60000);
    const matched = new Array(60).fill(0), mismatched = new Array(60).fill(0);
    for (const m of s.per_minute) {
      const i = 59 - (now - Math.floor(m.minute / 60));
      if (i >= 0 && i < 60) { matched[i] = m.matched; mismatched[i] = m.mismatched; }
    }
    drawLines(c.shadowChart, matched, mismatched, "#2858c5", "#c53a28",
      "matched " + s.matched + ", mismatched " + s.mismatched);
    c.shadowFields.replaceChildren(...(s.fields.length ? s.fields.slice(0, 8).map((f) =>
      el("li", { "data-path": f.path }, el("code", { text: f.path }), " " + f.mismatched)) :
      [el("li", { class: "muted", text: "no field differs" })]));
    const f = s.fields.find((x) => x.examples.length);
    if (!f) { c.shadowDiff.replaceChildren(el("p", { class: "muted", text: "no example" })); return; }
    const e = f.examples[0];
    c.shadowDiff.replaceChildren(el("p", { class: "muted", text: "row " + e.legacy_id + ", " + f.path }),
      el("div", { class: "side-by-side" },
        el("div", {}, el("h4", { text: "legacy" }), el("pre", { "data-side": "legacy", text: e.legacy ?? "(absent)" })),
        el("div", {}, el("h4", { text: "TaskManager" }),
          el("pre", { "data-side": "taskmanager", text: e.taskmanager ?? "(absent)" }))));
  }

  // ---- quarantine ------------------------------------------------------------

  async function renderQuarantine() {
    const type = $("quarantine-type").value;
    const page = await getJSON("/dashboard/quarantine.json?offset=" + quarantineOffset + "&limit=" +
      quarantineLimit + (type ? "&type=" + encodeURIComponent(type) : ""));
    if (page.total > 0 && quarantineOffset >= page.total) {
      quarantineOffset = Math.max(0, Math.floor((page.total - 1) / quarantineLimit) * quarantineLimit);
      return renderQuarantine();
    }
    $("quarantine-total").textContent = "(" + page.total + ")";
    $("quarantine-range").textContent = page.total ? (page.offset + 1) + "-" +
      (page.offset + page.entries.length) + " of " + page.total : "";
    $("quarantine-prev").disabled = page.offset === 0;
    $("quarantine-next").disabled = page.offset + page.entries.length >= page.total;
    $("quarantine-empty").hidden = page.total > 0;
    // Rebuilt only when the page of rows changed, so a button is not
    // replaced under the operator's click.
    const signature = JSON.stringify(page.entries);
    if (signature === quarantineShown) return;
    quarantineShown = signature;
    const rows = page.entries.map((q) => {
      const retry = el("button", { type: "button", class: "retry", text: "Retry" });
      retry.addEventListener("click", async () => {
        const answer = await act("/dashboard/actions/quarantine-retry", { ids: [q.id] });
        if (answer) {
          say(answer.released.length ? "row " + q.id + " released for another attempt"
            : "row " + q.id + " was no longer in quarantine");
          refresh();
        }
      });
      return el("tr", { "data-id": q.id },
        el("td", { class: "num", text: q.id }), el("td", { text: q.task_type }), el("td", { text: q.reason }),
        el("td", { class: "num", text: q.attempts }), el("td", { class: "detail", text: q.detail }),
        el("td", { text: q.first_at.replace("T", " ").slice(0, 19) }),
        el("td", { text: q.last_at.replace("T", " ").slice(0, 19) }), el("td", {}, retry));
    });
    $("quarantine-rows").replaceChildren(...rows);
  }

  // ---- the two sides ---------------------------------------------------------

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([k, v, cls]) =>
      [el("dt", { text: k }), el("dd", { text: v, class: cls || null, "data-fact": k })]));
  }

  function renderSides(d) {
    const a = d.api;
    facts($("api-facts"), [
      ["url", a.url],
      ["reachable", a.reachable ? "yes" : "no" + (a.failing_for_seconds !== null ? " (failing for " +
        age(a.failing_for_seconds) + ")" : ""), a.reachable ? "good" : "bad"],
      ["API key", a.api_key_accepted ? "accepted" : "refused (401)", a.api_key_accepted ? "" : "bad"],
      ["429 pause", a.paused_for_seconds === null ? "none" : "for " + age(a.paused_for_seconds),
        a.paused_for_seconds === null ? "" : "bad"],
      ["last error", a.last_error === null ? "none" : a.last_error + " (" + age(a.last_error_age_seconds) +
        " ago)"],
    ]);
    $("api-breakers").replaceChildren(...a.breakers.map((b) => el("li", {}, b.task_type + " (" + b.tm_type +
      "): ", el("span", { class: "state-" + b.state, text: b.state }), b.closes_in_seconds === null ? "" :
      " for " + age(b.closes_in_seconds), b.failures ? ", " + b.failures + " failure(s) in a row" : "")));
    const l = d.legacy;
    facts($("legacy-facts"), [
      ["file", l.file], ["schema", "variant " + l.variant], ["journal mode", l.journal_mode],
      ["file size", bytes(l.file_bytes)], ["WAL size", bytes(l.wal_bytes)],
      ["objects", l.objects, l.objects_intact ? "good" : "bad"],
      ["write-lock wait", l.write_lock_wait_seconds > 0 ? age(l.write_lock_wait_seconds) : "none",
        l.write_lock_wait_seconds > 5 ? "bad" : ""],
    ]);
  }

  // ---- refresh loop ----------------------------------------------------------

  // ---- overview of several queues ------------------------------------------

  function renderOverview(f) {
    $("overview").hidden = false;
    for (const id of ["types", "quarantine", "sides"]) { const n = $(id); if (n) n.hidden = true; }
    $("where").textContent = f.queues.length + " queues on " + f.host;
    const body = $("overview-rows");
    body.replaceChildren();
    for (const qu of f.queues) {
      const link = el("a", { href: "/?queue=" + encodeURIComponent(qu.queue), text: qu.queue });
      const stages = qu.types.map((t) => t.task_type + ": " + t.stage).join(", ") || "-";
      const tr = el("tr", { "data-queue": qu.queue },
        el("td", {}, link), el("td", { text: qu.database }),
        el("td", { text: qu.state, "data-kind": qu.state === "running" ? "good" : "bad" }),
        el("td", { text: stages }), el("td", { text: qu.totals.queued }), el("td", { text: qu.totals.in_flight }),
        el("td", { text: qu.totals.forwarded }), el("td", { text: qu.totals.quarantined }),
        el("td", { text: qu.attention.join("; ") || "-", "data-kind": qu.attention.length ? "bad" : "good" }));
      body.append(tr);
    }
    const t = f.totals;
    $("overview-totals").textContent = "total: " + t.queued + " queued, " + t.in_flight + " in flight, " +
      t.forwarded + " forwarded, " + t.quarantined + " quarantined; " + f.attention + " queue(s) need attention";
  }

  let refreshing = false;
  let overview = null;
  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      if (QUEUE === null && overview !== false) {
        const f = await getJSON("/fleet.json");
        overview = f.queues.length > 1;
        if (overview) {
          renderOverview(f);
          $("live").textContent = "live";
          $("live").dataset.state = "live";
          $("updated").textContent = "updated " + new Date().toLocaleTimeString();
          return;
        }
      }
      const d = await getJSON("/dashboard.json");
      $("where").textContent = (QUEUE === null ? "" : "queue " + QUEUE + ": ") + d.bridge_id + " on " + d.host +
        " - " + d.status.database;
      const byType = new Map(d.types.map((t) => [t.task_type, t]));
      percentModes = d.percent_modes || percentModes;
      for (const row of d.status.types) {
        renderType(byType.get(row.task_type), row, d.stages, d.stages.concat(d.other_modes));
      }
      const select = $("quarantine-type");
      const known = new Set([...select.options].map((o) => o.value));
      for (const row of d.status.types) {
        if (!known.has(row.task_type)) select.append(el("option", { value: row.task_type, text: row.task_type }));
      }
      renderSides(d);
      await renderQuarantine();
      $("live").textContent = "live";
      $("live").dataset.state = "live";
      $("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.generatedAt = d.generated_at;
    } catch (e) {
      $("live").textContent = "disconnected";
      $("live").dataset.state = "down";
    } finally {
      refreshing = false;
    }
  }

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value.trim());
  });
  $("token-forget").addEventListener("click", () => setToken(""));
  $("quarantine-type").addEventListener("change", () => { quarantineOffset = 0; refresh(); });
  $("quarantine-prev").addEventListener("click", () => {
    quarantineOffset = Math.max(0, quarantineOffset - quarantineLimit); refresh();
  });
  $("quarantine-next").addEventListener("click", () => { quarantineOffset += quarantineLimit; refresh(); });
  setToken("");
  refresh();
  setInterval(refresh, POLL_MS);
})();
