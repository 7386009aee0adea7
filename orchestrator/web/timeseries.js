// Rewind dashboard: charts over time from GET /api/analytics/timeseries (buckets of bucket_s
// seconds): hit rate after the root chunk, p50 / p95 wait, GPU-seconds by job kind. Inline SVG
// with a real time axis (x is the bucket's start time; gaps stay gaps). dashboard.js fetches
// the data and calls RewindTimeseries.draw(container, kind, data).
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const H = 190;
  const PAD = { left: 54, right: 14, top: 12, bottom: 34 };

  function svgEl(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function fmtTime(t, spanMs) {
    const d = new Date(t);
    if (spanMs > 2 * 86400e3) return d.toLocaleDateString([], { month: "short", day: "numeric" });
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit",
      second: spanMs < 600e3 ? "2-digit" : undefined });
  }

  const fmtMs = (x) => (x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(x < 10000 ? 1 : 0)} s`);
  const SERIES = {
    hitrate: {
      unit: (v) => `${Math.round(v * 100)}%`, max: () => 1, kind: "line",
      series: [{ key: "hit_rate", label: "hit rate", cls: "hit" }],
      text: "Hit rate of chunk requests after the root chunk, per bucket",
    },
    waits: {
      unit: fmtMs, kind: "line",
      series: [
        { key: "p50_ms", label: "p50", cls: "p50" },
        { key: "p95_ms", label: "p95", cls: "p95" },
      ],
      text: "p50 and p95 wait, per bucket",
    },
    gpu: {
      unit: (v) => `${v.toFixed(v < 10 ? 1 : 0)} s`, kind: "stack",
      series: [
        { key: "demand", label: "demand GPU-s", cls: "demand" },
        { key: "speculative", label: "speculative GPU-s", cls: "speculative" },
      ],
      text: "GPU-seconds by job kind, per bucket",
    },
  };

  const value = (b, key, kind) => (kind === "stack" ? b.gpu_s[key] || 0 : b[key]);

  function niceMax(x) {
    if (!(x > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(x));
    return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= x);
  }

  function draw(container, name, data) {
    const spec = SERIES[name];
    // One SVG unit per CSS pixel of the panel, so text keeps its size on wide panels.
    const W = Math.max(360, Math.round(container.clientWidth || 600));
    const buckets = (data.buckets || []).filter((b) =>
      spec.series.some((s) => value(b, s.key, spec.kind) !== null && value(b, s.key, spec.kind) !== undefined
        && (spec.kind !== "stack" || value(b, s.key, spec.kind) > 0)));
    container.textContent = "";
    container.dataset.bucketS = String(data.bucket_s);
    if (!buckets.length) {
      container.dataset.state = "empty";
      container.dataset.rows = "0";
      const p = document.createElement("p");
      p.className = "chart-message empty";
      p.textContent = "Nothing in this window yet.";
      container.appendChild(p);
      return;
    }
    container.dataset.state = "ok";
    container.dataset.rows = String(buckets.length);
    const legend = document.createElement("ul");
    legend.className = "legend";
    legend.setAttribute("aria-hidden", "true");
    for (const s of spec.series) {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = `swatch ${s.cls}`;
      li.append(sw, s.label);
      legend.appendChild(li);
    }
    container.appendChild(legend);

    const step = data.bucket_s * 1000;
    const times = buckets.map((b) => Date.parse(b.start));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times) + step;
    const span = Math.max(step, t1 - t0);
    const top = spec.max ? spec.max() : niceMax(Math.max(...buckets.map((b) =>
      spec.kind === "stack" ? spec.series.reduce((s, x) => s + value(b, x.key, "stack"), 0)
        : Math.max(...spec.series.map((x) => value(b, x.key, "line") || 0)))));
    const pw = W - PAD.left - PAD.right;
    const ph = H - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / span) * pw;
    const y = (v) => PAD.top + ph - (v / top) * ph;

    const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, class: "timeseries", role: "img",
      "aria-label": `${spec.text}: ${buckets.length} buckets of ${data.bucket_s} s` });
    container.appendChild(svg);
    const axis = svgEl("g", { class: "axis" }, svg);
    for (const f of [0, 0.5, 1]) {
      svgEl("line", { x1: PAD.left, x2: W - PAD.right, y1: y(top * f), y2: y(top * f), class: "grid" }, axis);
      svgEl("text", { x: PAD.left - 6, y: y(top * f), "text-anchor": "end",
        "dominant-baseline": "middle", class: "tick" }, axis).textContent = spec.unit(top * f);
    }
    const ticks = 5;
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (span * i) / ticks;
      svgEl("line", { x1: x(t), x2: x(t), y1: PAD.top + ph, y2: PAD.top + ph + 4, class: "tick-mark" }, axis);
      const label = svgEl("text", { x: x(t), y: H - 14, "text-anchor": "middle", class: "tick time" }, axis);
      label.textContent = fmtTime(t, span);
      label.dataset.time = new Date(t).toISOString();
    }
    svgEl("text", { x: W - PAD.right, y: H - 1, "text-anchor": "end", class: "tick" }, axis)
      .textContent = `UTC-aligned buckets of ${data.bucket_s} s, local time`;

    if (spec.kind === "stack") {
      const bw = Math.max(2, (step / span) * pw - 2);
      for (const b of buckets) {
        let base = 0;
        const t = Date.parse(b.start);
        for (const s of spec.series) {
          const v = value(b, s.key, "stack");
          if (v > 0) {
            const r = svgEl("rect", { x: x(t) + 1, y: y(base + v), width: bw, height: y(base) - y(base + v),
              class: `bar ${s.cls}`, "data-time": b.start }, svg);
            svgEl("title", {}, r).textContent = `${new Date(t).toLocaleString()} · ${s.label}: ${spec.unit(v)}`;
          }
          base += v;
        }
      }
      return;
    }
    for (const s of spec.series) {
      const pts = buckets.filter((b) => b[s.key] !== null && b[s.key] !== undefined)
        .map((b) => [x(Date.parse(b.start) + step / 2), y(b[s.key]), b]);
      if (pts.length > 1) {
        svgEl("polyline", { points: pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" "),
          class: `line ${s.cls}` }, svg);
      }
      for (const [px, py, b] of pts) {
        const c = svgEl("circle", { cx: px, cy: py, r: 3, class: `point ${s.cls}`, "data-time": b.start }, svg);
        svgEl("title", {}, c).textContent =
          `${new Date(Date.parse(b.start)).toLocaleString()} · ${s.label}: ${spec.unit(b[s.key])} (${b.requests} req)`;
      }
    }
  }

  window.RewindTimeseries = { draw };
})();
