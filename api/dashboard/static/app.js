// Conveyor's dashboard: polls /dashboard/data and draws each model's figures and charts
// (plain DOM and SVG, nothing fetched from elsewhere).
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

function fmt(value, unit) {
  if (value === null || value === undefined) return "–";
  const n = Number(value);
  const text = n >= 100 || Number.isInteger(n) ? n.toFixed(0) : n.toFixed(n >= 10 ? 1 : 2);
  return unit ? `${text} ${unit}` : text;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function figure(label, value, name, bad) {
  return el("div", { class: "figure" },
    el("div", { class: "label" }, label),
    el("div", { class: bad ? "value bad" : "value", "data-figure": name }, value));
}

// A small line chart of one or more series over the same time points.
function chart(label, times, series) {
  const width = 300, height = 56, pad = 3;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const top = Math.max(1e-9, ...values);
  const start = times.length ? times[0] : 0;
  const span = Math.max(1, (times.length ? times[times.length - 1] : 1) - start);
  for (const s of series) {
    const points = [];
    s.values.forEach((v, i) => {
      if (v === null) return;
      const x = pad + ((times[i] - start) / span) * (width - 2 * pad);
      const y = height - pad - (v / top) * (height - 2 * pad);
      points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
    });
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("class", `line ${s.cls || ""}`);
    line.setAttribute("points", points.join(" "));
    svg.append(line);
  }
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${label}: max ${fmt(top)}`;
  svg.append(title);
  return el("div", { class: "chart" }, el("div", { class: "label" }, `${label} (max ${fmt(top)})`), svg);
}

function modelCard(m) {
  const versions = m.versions.map((v) =>
    `v${v.version}: ${v.instances} instance${v.instances === 1 ? "" : "s"}, ${fmt(v.queued)} queued`);
  const h = m.history;
  return el("section", { class: "model", "data-model": m.name },
    el("h2", {}, m.name, el("span", { class: `badge ${m.status}` }, m.status),
      el("span", { class: "badge" }, `default v${m.default_version}`)),
    el("div", { class: "versions" }, versions.join(" · ")),
    el("div", { class: "figures" },
      figure("instances", fmt(m.instances), "instances"),
      figure("queued", fmt(m.queued), "queued"),
      figure("requests/s", fmt(m.rate), "rate"),
      figure("requests", fmt(m.requests), "requests"),
      figure("p50", fmt(m.p50_ms, "ms"), "p50"),
      figure("p99", fmt(m.p99_ms, "ms"), "p99"),
      figure("errors · 429", `${fmt(m.errors)} · ${fmt(m.rejected)}`, "errors", m.errors + m.rejected > 0),
      figure("dead letters", fmt(m.dead_letters), "dead_letters", m.dead_letters > 0),
      figure("streams open", fmt(m.streams_open), "streams_open"),
      figure("pieces/s", fmt(m.chunk_rate), "chunk_rate"),
      figure("first piece p50", fmt(m.first_chunk_p50_ms, "ms"), "first_chunk_p50"),
      figure("streams cancelled", fmt(m.streams_cancelled), "streams_cancelled")),
    el("div", { class: "charts" },
      chart("requests/s", h.t, [{ values: h.rate }]),
      chart("p50 · p99 ms", h.t, [{ values: h.p50_ms }, { values: h.p99_ms, cls: "p99" }]),
      chart("queued", h.t, [{ values: h.queued }]),
      chart("streamed pieces/s · open streams", h.t,
        [{ values: h.chunk_rate }, { values: h.streams_open, cls: "p99" }])));
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("/dashboard/data", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const data = await response.json();
    const main = document.getElementById("models");
    main.replaceChildren(...(data.models.length
      ? data.models.map(modelCard)
      : [el("p", { class: "empty" }, "No model registered yet.")]));
    document.getElementById("inflight").textContent = fmt(data.inflight);
    status.textContent = `updated ${new Date(data.time * 1000).toLocaleTimeString()}`;
    status.className = "status ok";
  } catch (error) {
    status.textContent = `cannot reach the gateway (${error.message})`;
    status.className = "status down";
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
