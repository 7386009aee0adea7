// Rewind dashboard: hit rates, waits, waste, GPU slots and the active config, polled live.
// Plain browser JavaScript; charts are inline SVG drawn here. Data comes only from:
//   GET /api/analytics/hit-rates?group_by=...   request_rates + branch_rates
//   GET /api/analytics/waits?group_by=...       mean / p50 / p95 / p99 (ms)
//   GET /api/analytics/waste?group_by=...       waste ratio, GPU-seconds, USD
//   GET /api/health                             gpu.busy_by_kind, gpu.slots, queued demands, policy
//   GET /api/admin/config                       the active configuration
//   GET /api/analytics/timeseries               per-bucket hit rate, waits, GPU-s; headline totals
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const REFRESH_MS = Math.max(1, Number(params.get("refresh")) || 5) * 1000;
  const HISTORY = 40; // GPU samples kept for the live strip
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);

  const OUTCOMES = [
    { key: "hit_rate", count: "hits", label: "hit", cls: "hit" },
    { key: "inflight_rate", count: "inflight", label: "in-flight", cls: "inflight" },
    { key: "miss_rate", count: "misses", label: "miss", cls: "miss" },
  ];
  const CONFIG_ORDER = ["speculation", "gpu", "experiments", "generation"];

  const state = { paused: false, timer: null, gpuHistory: [], openDetails: new Set() };

  // ---------------------------------------------------------------- fetching

  async function getJson(path) {
    let res;
    try {
      res = await fetch(path, { headers: window.rewindAuth.headers({ accept: "application/json" }) });
    } catch (err) {
      return { ok: false, status: 0, path, detail: `the service could not be reached (${err.message})` };
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const detail = data && data.detail
        ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail))
        : `${res.status} ${res.statusText}`;
      return { ok: false, status: res.status, path, detail, code: data && data.error };
    }
    return { ok: true, status: res.status, path, data };
  }

  function sinceParam() {
    const seconds = Number($("window").value);
    if (!seconds) return "";
    return `&since=${encodeURIComponent(new Date(Date.now() - seconds * 1000).toISOString())}`;
  }

  // ---------------------------------------------------------------- formatting

  const pct = (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : `${Math.round(x * 100)}%`);
  const num = (x, d = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const usd = (x) => (x === null || x === undefined ? "–" : `$${Number(x) < 0.01 ? Number(x).toFixed(5) : Number(x).toFixed(2)}`);
  function ms(x) {
    if (x === null || x === undefined) return "–";
    if (x < 1000) return `${Math.round(x)} ms`;
    if (x < 60000) return `${(x / 1000).toFixed(1)} s`;
    return `${(x / 60000).toFixed(1)} min`;
  }

  function groupLabel(row, groupBy) {
    return groupBy.map((g) => {
      const v = row[g];
      if (v === null || v === undefined) return g === "action" ? "(root / pose)" : "(none)";
      if (g === "depth") return Number(v) === 0 ? "0 · on demand" : `depth ${v}`;
      return String(v);
    }).join(" · ");
  }

  function el(tag, attrs = {}, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svgEl(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  // ---------------------------------------------------------------- chart states

  function message(container, stateName, text) {
    container.dataset.state = stateName;
    container.dataset.rows = "0";
    container.textContent = "";
    container.appendChild(el("p", { class: `chart-message ${stateName}` }, text));
  }

  function failed(container, result) {
    if (result.status === 404) {
      message(container, "unavailable",
        `The analytics API is not available on this server: GET ${result.path.split("?")[0]} ` +
        `answered 404 (${result.detail}).`);
    } else {
      message(container, "error", `Could not load ${result.path.split("?")[0]}: ${result.detail}` +
        (result.status ? ` [${result.status}${result.code ? ` ${result.code}` : ""}]` : ""));
    }
  }

  function legend(items) {
    const ul = el("ul", { class: "legend", "aria-hidden": "true" });
    for (const it of items) {
      const li = el("li");
      li.appendChild(el("span", { class: `swatch ${it.cls}` }));
      li.appendChild(document.createTextNode(it.label));
      ul.appendChild(li);
    }
    return ul;
  }

  function numbersTable(container, id, columns, rows) {
    const details = el("details", { class: "numbers" });
    if (state.openDetails.has(id)) details.open = true;
    details.addEventListener("toggle", () => {
      if (details.open) state.openDetails.add(id); else state.openDetails.delete(id);
    });
    details.appendChild(el("summary", {}, "Numbers"));
    const table = el("table");
    const head = el("tr");
    for (const c of columns) head.appendChild(el("th", { scope: "col" }, c.label));
    table.appendChild(el("thead")).appendChild(head);
    const body = el("tbody");
    for (const r of rows) {
      const tr = el("tr");
      for (const c of columns) tr.appendChild(el("td", {}, c.format(r)));
      body.appendChild(tr);
    }
    table.appendChild(body);
    details.appendChild(table);
    container.appendChild(details);
  }

  // A horizontal bar chart. series: [{label, cls, value(row) -> number, text(row)}].
  // stacked: segments of one bar summing to `max`; otherwise one thin bar per series.
  function barChart(container, { id, rows, label, series, stacked, max, right, summary }) {
    container.textContent = "";
    container.dataset.state = "ok";
    container.dataset.rows = String(rows.length);
    container.appendChild(legend(series));
    const W = 600;
    const labelW = 150;
    const rightW = right ? 84 : 12;
    const barW = W - labelW - rightW - 8;
    const perSeries = stacked ? 18 : 12;
    const rowH = stacked ? 30 : series.length * (perSeries + 3) + 12;
    const H = rows.length * rowH + 6;
    const top = max || Math.max(1e-9, ...rows.flatMap((r) => series.map((s) => s.value(r) || 0)));
    const svg = svgEl("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "bars", role: "img", "aria-label": summary(rows),
    });
    container.appendChild(svg);
    rows.forEach((r, i) => {
      const y0 = i * rowH + 4;
      const g = svgEl("g", { class: "bar-row", "data-label": label(r) }, svg);
      const name = svgEl("text", {
        x: labelW - 8, y: y0 + (rowH - 6) / 2, "text-anchor": "end", "dominant-baseline": "middle",
        class: "bar-label",
      }, g);
      name.textContent = truncate(label(r), 22);
      svgEl("title", {}, name).textContent = label(r);
      svgEl("rect", { x: labelW, y: y0, width: barW, height: rowH - 8, class: "bar-track", rx: 3 }, g);
      let x = labelW;
      series.forEach((s, j) => {
        const v = Math.max(0, s.value(r) || 0);
        const w = (v / top) * barW;
        const y = stacked ? y0 + (rowH - 8 - perSeries) / 2 : y0 + 4 + j * (perSeries + 3);
        const rect = svgEl("rect", {
          x: stacked ? x : labelW, y, width: Math.max(w, v > 0 ? 1 : 0), height: perSeries,
          class: `bar ${s.cls}`, rx: 2,
        }, g);
        svgEl("title", {}, rect).textContent = `${label(r)} · ${s.label}: ${s.text(r)}`;
        const text = s.text(r);
        if (stacked) {
          if (w > 34) {
            const t = svgEl("text", {
              x: x + w / 2, y: y + perSeries / 2, "text-anchor": "middle",
              "dominant-baseline": "central", class: `bar-value inside ${s.cls}`,
            }, g);
            t.textContent = text;
          }
          x += w;
        } else {
          const inside = w > barW - 60;
          const t = svgEl("text", {
            x: inside ? labelW + w - 4 : labelW + w + 4, y: y + perSeries / 2,
            "text-anchor": inside ? "end" : "start", "dominant-baseline": "central",
            class: `bar-value${inside ? " inside" : ""}`,
          }, g);
          t.textContent = text;
        }
      });
      if (right) {
        const t = svgEl("text", {
          x: W - 4, y: y0 + (rowH - 6) / 2, "text-anchor": "end", "dominant-baseline": "middle",
          class: "bar-right",
        }, g);
        t.textContent = right(r);
      }
    });
    return svg;
  }

  const truncate = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

  // ---------------------------------------------------------------- the charts

  function outcomeChart(container, id, result, emptyText) {
    if (!result.ok) return failed(container, result);
    const groupBy = result.data.group_by || [];
    const rows = (result.data.request_rates || []).filter((r) => r.requests > 0);
    if (!rows.length) return message(container, "empty", emptyText);
    const label = (r) => groupLabel(r, groupBy) || "all";
    barChart(container, {
      id, rows, label, stacked: true, max: 1,
      series: OUTCOMES.map((o) => ({ ...o, value: (r) => r[o.key], text: (r) => pct(r[o.key]) })),
      right: (r) => `${r.requests} req`,
      summary: (rs) => rs.map((r) => `${label(r)}: ${pct(r.hit_rate)} hit, ${pct(r.inflight_rate)} in-flight, ` +
        `${pct(r.miss_rate)} miss of ${r.requests}`).join("; "),
    });
    numbersTable(container, id, [
      ...groupBy.map((g) => ({ label: g, format: (r) => (r[g] ?? "–").toString() })),
      { label: "requests", format: (r) => String(r.requests) },
      { label: "hits", format: (r) => String(r.hits) },
      { label: "in-flight", format: (r) => String(r.inflight) },
      { label: "misses", format: (r) => String(r.misses) },
      { label: "hit rate", format: (r) => pct(r.hit_rate) },
      { label: "in-flight rate", format: (r) => pct(r.inflight_rate) },
      { label: "miss rate", format: (r) => pct(r.miss_rate) },
    ], rows);
  }

  function branchChart(container, result) {
    if (!result.ok) return failed(container, result);
    const groupBy = result.data.group_by || [];
    const rows = (result.data.branch_rates || []).filter((r) => r.speculated > 0);
    if (!rows.length) return message(container, "empty", "No speculated chunks in this window yet.");
    const label = (r) => groupLabel(r, groupBy) || "all";
    barChart(container, {
      id: "branch", rows, label, max: 1,
      series: [
        { label: "branch hit rate", cls: "hit", value: (r) => r.branch_hit_rate, text: (r) => pct(r.branch_hit_rate) },
        {
          label: "GPU-weighted", cls: "weighted", value: (r) => r.gpu_weighted_branch_hit_rate,
          text: (r) => pct(r.gpu_weighted_branch_hit_rate),
        },
      ],
      right: (r) => `${r.used}/${r.speculated} used`,
      summary: (rs) => rs.map((r) => `${label(r)}: ${pct(r.branch_hit_rate)} of ${r.speculated} speculated chunks used`).join("; "),
    });
    numbersTable(container, "branch", [
      ...groupBy.map((g) => ({ label: g, format: (r) => (r[g] ?? "–").toString() })),
      { label: "speculated", format: (r) => String(r.speculated) },
      { label: "used", format: (r) => String(r.used) },
      { label: "branch hit rate", format: (r) => pct(r.branch_hit_rate) },
      { label: "speculated GPU-s", format: (r) => num(r.speculated_gpu_s) },
      { label: "used GPU-s", format: (r) => num(r.used_gpu_s) },
      { label: "GPU-weighted", format: (r) => pct(r.gpu_weighted_branch_hit_rate) },
    ], rows);
  }

  function waitsChart(container, result) {
    if (!result.ok) return failed(container, result);
    const groupBy = result.data.group_by || [];
    const rows = (result.data.rows || []).filter((r) => r.requests > 0);
    if (!rows.length) return message(container, "empty", "No served requests in this window yet.");
    const label = (r) => groupLabel(r, groupBy) || "all";
    barChart(container, {
      id: "waits", rows, label,
      series: [
        { label: "p50", cls: "p50", value: (r) => r.p50_ms, text: (r) => ms(r.p50_ms) },
        { label: "p95", cls: "p95", value: (r) => r.p95_ms, text: (r) => ms(r.p95_ms) },
        { label: "p99", cls: "p99", value: (r) => r.p99_ms, text: (r) => ms(r.p99_ms) },
      ],
      right: (r) => `${r.requests} req`,
      summary: (rs) => rs.map((r) => `${label(r)}: p50 ${ms(r.p50_ms)}, p95 ${ms(r.p95_ms)}, p99 ${ms(r.p99_ms)}`).join("; "),
    });
    numbersTable(container, "waits", [
      ...groupBy.map((g) => ({ label: g, format: (r) => (r[g] ?? "–").toString() })),
      { label: "requests", format: (r) => String(r.requests) },
      { label: "mean", format: (r) => ms(r.mean_ms) },
      { label: "p50", format: (r) => ms(r.p50_ms) },
      { label: "p95", format: (r) => ms(r.p95_ms) },
      { label: "p99", format: (r) => ms(r.p99_ms) },
    ], rows);
  }

  function wasteChart(container, result) {
    if (!result.ok) return failed(container, result);
    const groupBy = result.data.group_by || [];
    const rows = (result.data.rows || []).filter((r) => (r.gpu_s || 0) > 0 || (r.served_chunks || 0) > 0);
    if (!rows.length) return message(container, "empty", "No GPU time spent in this window yet.");
    const label = (r) => groupLabel(r, groupBy) || "all";
    barChart(container, {
      id: "waste", rows, label, max: 1,
      series: [{ label: "waste ratio", cls: "waste", value: (r) => r.waste_ratio, text: (r) => pct(r.waste_ratio) }],
      right: (r) => `${usd(r.usd_per_served_chunk)}/chunk`,
      summary: (rs) => rs.map((r) => `${label(r)}: ${pct(r.waste_ratio)} of speculative GPU time wasted, ` +
        `${usd(r.usd_per_served_chunk)} per served chunk`).join("; "),
    });
    numbersTable(container, "waste", [
      ...groupBy.map((g) => ({ label: g, format: (r) => (r[g] ?? "–").toString() })),
      { label: "waste ratio", format: (r) => pct(r.waste_ratio) },
      { label: "speculative GPU-s", format: (r) => num(r.speculative_gpu_s) },
      { label: "unused GPU-s", format: (r) => num(r.unused_gpu_s) },
      { label: "GPU-s", format: (r) => num(r.gpu_s) },
      { label: "USD", format: (r) => usd(r.usd) },
      { label: "served chunks", format: (r) => String(r.served_chunks ?? "–") },
      { label: "GPU-s / chunk", format: (r) => num(r.gpu_s_per_served_chunk, 2) },
      { label: "USD / chunk", format: (r) => usd(r.usd_per_served_chunk) },
    ], rows);
  }

  function gpuCard(result) {
    const container = $("chart-gpu");
    const foot = $("gpu-foot");
    if (!result.ok) { failed(container, result); foot.textContent = ""; return; }
    const gpu = result.data.gpu || {};
    const busy = gpu.busy_by_kind || {};
    const slots = Number(gpu.slots) || 0;
    const demand = Number(busy.demand) || 0;
    const speculative = Number(busy.speculative) || 0;
    state.gpuHistory.push({ demand, speculative, slots });
    if (state.gpuHistory.length > HISTORY) state.gpuHistory.shift();

    container.textContent = "";
    container.dataset.state = "ok";
    container.dataset.rows = "1";
    const big = el("p", { class: "big-number" });
    big.appendChild(el("strong", {}, String(demand + speculative)));
    big.appendChild(document.createTextNode(` of ${slots || "?"} busy`));
    container.appendChild(big);
    container.appendChild(legend([
      { label: `demand ${demand}`, cls: "demand" },
      { label: `speculative ${speculative}`, cls: "speculative" },
      { label: `idle ${Math.max(0, slots - demand - speculative)}`, cls: "idle" },
    ]));
    // The live strip: one column per poll, demand below speculative.
    const W = 300;
    const H = 56;
    const max = Math.max(1, slots, ...state.gpuHistory.map((h) => h.demand + h.speculative));
    const colW = W / HISTORY;
    const svg = svgEl("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "strip", role: "img",
      "aria-label": `GPU slots busy: ${demand} demand, ${speculative} speculative, of ${slots}; ` +
        `last ${state.gpuHistory.length} samples`,
    });
    svgEl("rect", { x: 0, y: 0, width: W, height: H, class: "bar-track" }, svg);
    const offset = HISTORY - state.gpuHistory.length;
    state.gpuHistory.forEach((h, i) => {
      const x = (offset + i) * colW + 1;
      const dh = (h.demand / max) * H;
      const sh = (h.speculative / max) * H;
      svgEl("rect", { x, y: H - dh, width: colW - 2, height: dh, class: "bar demand" }, svg);
      svgEl("rect", { x, y: H - dh - sh, width: colW - 2, height: sh, class: "bar speculative" }, svg);
    });
    container.appendChild(svg);
    const queued = gpu.queued_demands ?? 0;
    foot.textContent = `${queued} demand request${queued === 1 ? "" : "s"} waiting for a slot · ` +
      `backend ${gpu.backend || "?"}, ${gpu.status || "?"}`;
  }

  // The headline: steps after each walk's root chunk (GET /api/analytics/timeseries totals).
  function totalsCard(series, waste) {
    const dl = $("totals");
    dl.textContent = "";
    const add = (term, value, cls) => {
      const div = el("div", { class: `stat ${cls || ""}` });
      div.appendChild(el("dt", {}, term));
      div.appendChild(el("dd", {}, value));
      dl.appendChild(div);
    };
    if (!series.ok) {
      dl.dataset.state = "error";
      add("steps", "–");
      dl.appendChild(el("p", { class: "chart-message error" }, series.status === 404
        ? "The analytics API is not available on this server (404)."
        : `Could not load totals: ${series.detail}`));
      return;
    }
    const t = series.data.totals;
    dl.dataset.state = t.requests ? "ok" : "empty";
    dl.dataset.roots = String(t.roots);
    add("steps", String(t.requests));
    add("hit", pct(t.hit_rate), "hit");
    add("in-flight", pct(t.inflight_rate), "inflight");
    add("miss", pct(t.miss_rate), "miss");
    add("p50 wait", ms(t.p50_ms));
    add("p95 wait", ms(t.p95_ms));
    if (waste.ok) {
      const wr = waste.data.rows || [];
      const spec = wr.reduce((s, r) => s + (Number(r.speculative_gpu_s) || 0), 0);
      const unused = wr.reduce((s, r) => s + (Number(r.unused_gpu_s) || 0), 0);
      add("waste", spec ? pct(unused / spec) : "–");
      add("GPU-s", num(wr.reduce((s, r) => s + (Number(r.gpu_s) || 0), 0)));
    }
  }

  function policyCard(health, config) {
    const box = $("policy");
    box.textContent = "";
    if (!health.ok && !config.ok) { failed(box, config); return; }
    box.dataset.state = "ok";
    const h = health.ok ? health.data : {};
    // /api/health "policy": a name, or {arm: policy} when sessions are split between arms.
    let policyName = config.ok && config.data.speculation ? config.data.speculation.policy : "?";
    if (typeof h.policy === "string") policyName = h.policy;
    else if (h.policy && typeof h.policy === "object") {
      const names = [...new Set(Object.values(h.policy))];
      if (names.length) policyName = names.join(" / ");
    }
    box.appendChild(el("p", { class: "big-number" })).appendChild(el("strong", { id: "policy-name" }, policyName));
    if (!config.ok) {
      box.appendChild(el("p", { class: "chart-message error" }, config.status === 404
        ? "GET /api/admin/config answered 404: the config API is not available on this server."
        : `Could not load the config: ${config.detail}`));
      return;
    }
    const sp = config.data.speculation || {};
    const facts = el("p", { class: "muted" },
      `depth ≤ ${sp.max_depth ?? "?"} · speculative share ${pct(sp.speculative_share)} · ` +
      `${sp.rate_gpu_s_per_s ?? "?"} GPU-s/s, burst ${sp.burst_gpu_s ?? "?"} GPU-s`);
    box.appendChild(facts);
    const arms = config.data.active_arms || [];
    if (arms.length) {
      const table = el("table", { class: "arms" });
      const head = el("tr");
      for (const c of ["arm", "policy", "weight"]) head.appendChild(el("th", { scope: "col" }, c));
      table.appendChild(el("thead")).appendChild(head);
      const body = table.appendChild(el("tbody"));
      for (const a of arms) {
        const tr = el("tr");
        tr.appendChild(el("td", {}, a.name));
        tr.appendChild(el("td", {}, a.policy));
        tr.appendChild(el("td", {}, String(a.weight)));
        body.appendChild(tr);
      }
      box.appendChild(table);
    }
  }

  function configPanel(result) {
    const box = $("config");
    if (!result.ok) {
      if (result.status === 404) {
        message(box, "unavailable", "The config API is not available on this server: " +
          "GET /api/admin/config answered 404.");
      } else failed(box, result);
      return;
    }
    box.textContent = "";
    box.dataset.state = "ok";
    const data = result.data;
    const names = [...CONFIG_ORDER.filter((k) => k in data),
      ...Object.keys(data).filter((k) => !CONFIG_ORDER.includes(k))];
    for (const name of names) {
      const value = data[name];
      const details = el("details", { class: "config-section", "data-section": name });
      const id = `config:${name}`;
      details.open = state.openDetails.has(id); // collapsed unless the reader opened it
      details.addEventListener("toggle", () => {
        state.openDetails.delete(details.open ? `${id}:closed` : id);
        state.openDetails.add(details.open ? id : `${id}:closed`);
      });
      details.appendChild(el("summary", {}, name));
      if (value && typeof value === "object" && !Array.isArray(value)) {
        const table = el("table", { class: "kv" });
        for (const [k, v] of Object.entries(value)) {
          const tr = el("tr");
          tr.appendChild(el("th", { scope: "row" }, k));
          tr.appendChild(el("td", {}, v !== null && typeof v === "object" ? JSON.stringify(v) : String(v)));
          table.appendChild(tr);
        }
        details.appendChild(table);
      } else {
        details.appendChild(el("pre", {}, JSON.stringify(value, null, 2)));
      }
      box.appendChild(details);
    }
  }

  // ---------------------------------------------------------------- refresh loop

  async function refresh() {
    clearTimeout(state.timer);
    const since = sinceParam();
    const hit = (g) => getJson(`/api/analytics/hit-rates?group_by=${g}${since}`);
    const [health, config, byPolicy, byAction, waits, waste, series] = await Promise.all([
      getJson("/api/health"),
      getJson("/api/admin/config"),
      hit("policy,arm"),
      hit("action"),
      getJson(`/api/analytics/waits?group_by=policy${since}`),
      getJson(`/api/analytics/waste?group_by=policy${since}`),
      getJson(`/api/analytics/timeseries?${since.slice(1)}`),
    ]);
    const all = [health, config, byPolicy, byAction, waits, waste, series];
    gpuCard(health);
    totalsCard(series, waste);
    policyCard(health, config);
    for (const [id, kind] of [["chart-hitrate-time", "hitrate"], ["chart-waits-time", "waits"],
      ["chart-gpu-time", "gpu"]]) {
      if (series.ok) window.RewindTimeseries.draw($(id), kind, series.data);
      else failed($(id), series);
    }
    outcomeChart($("chart-policy"), "policy", byPolicy, "No chunk requests in this window yet.");
    branchChart($("chart-branch"), byPolicy);
    outcomeChart($("chart-action"), "action", byAction, "No chunk requests in this window yet.");
    waitsChart($("chart-waits"), waits);
    wasteChart($("chart-waste"), waste);
    configPanel(config);

    const banner = $("error");
    const down = all.every((r) => !r.ok && r.status === 0);
    // With [auth] on, analytics and config are for operators: say so instead of empty charts.
    const denied = all.find((r) => !r.ok && (r.status === 401 || r.status === 403));
    banner.hidden = !down && !denied;
    if (down) {
      $("error-title").textContent = "The service is not answering.";
      $("error-detail").textContent = `${health.detail}. Retrying every ${REFRESH_MS / 1000} s.`;
    } else if (denied) {
      $("error-title").textContent = denied.status === 401 ? "Sign-in needed." : "Operators only.";
      $("error-detail").textContent =
        `${denied.detail}. Paste an operator token in the Token field.`;
    }
    const stamp = new Date().toLocaleTimeString();
    $("updated").textContent = state.paused ? `paused · last update ${stamp}`
      : `updated ${stamp} · every ${REFRESH_MS / 1000} s`;
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
    if (!state.paused) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  $("window").addEventListener("change", refresh);
  document.addEventListener("rewind:token", refresh);
  $("toolbar").addEventListener("submit", (e) => e.preventDefault());
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").setAttribute("aria-pressed", String(state.paused));
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      clearTimeout(state.timer);
      $("updated").textContent = "paused";
    } else refresh();
  });

  refresh();
})();
