// The trace viewer: a list of recent traces and one trace's waterfall, over traceview's JSON
// API (/api/services, /api/traces, /api/traces/{id}). The location hash holds the state:
// #trace=<id>&span=<id>, so a trace or span can be linked to and span links are plain links.
"use strict";

const $ = (selector) => document.querySelector(selector);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(message);
  }
  return body;
}

// One colour per service, the same on every load (a hash of its name into a palette).
const PALETTE = [
  "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
  "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
];
function serviceColour(service) {
  let hash = 0;
  for (const char of service) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length];
}

function chip(service) {
  return element("span", { class: "chip", style: { background: serviceColour(service) } }, service);
}

function formatMs(ms) {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(3)} ms`;
}

function formatTime(unixNano) {
  const date = new Date(Number(BigInt(unixNano) / 1000000n));
  return date.toLocaleTimeString(undefined, { hour12: false }) +
    "." + String(date.getMilliseconds()).padStart(3, "0");
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  return { trace: params.get("trace") || "", span: params.get("span") || "" };
}

function hashOf(trace, span) {
  return "#" + new URLSearchParams(span ? { trace, span } : { trace }).toString();
}

async function loadServices() {
  const select = $("#service");
  const chosen = select.value;
  const { services } = await getJson("/api/services");
  select.replaceChildren(element("option", { value: "" }, "all"));
  for (const service of services) select.append(element("option", { value: service }, service));
  select.value = services.includes(chosen) ? chosen : "";
}

async function loadTraces() {
  const params = new URLSearchParams({
    limit: $("#limit").value || "20",
    min_duration_ms: $("#min-duration").value || "0",
  });
  if ($("#service").value) params.set("service", $("#service").value);
  const status = $("#list-status");
  try {
    const { traces } = await getJson(`/api/traces?${params}`);
    const rows = traces.map((trace) => {
      const row = element(
        "tr",
        { "data-trace-id": trace.trace_id, class: trace.error ? "error" : "" },
        element("td", {}, formatTime(trace.start_unix_nano)),
        element("td", {}, chip(trace.root_service), trace.root_name),
        element("td", {}, ...trace.services.map(chip)),
        element("td", { class: "num" }, trace.span_count),
        element("td", { class: "num" }, formatMs(trace.duration_ms)),
      );
      row.addEventListener("click", () => { location.hash = hashOf(trace.trace_id); });
      return row;
    });
    $("#traces tbody").replaceChildren(...rows);
    status.textContent = traces.length ? "" : "No traces match.";
  } catch (error) {
    status.textContent = `Could not list traces: ${error.message}`;
  }
  markSelectedTrace();
}

function markSelectedTrace() {
  const { trace } = readHash();
  for (const row of document.querySelectorAll("#traces tbody tr")) {
    row.classList.toggle("selected", row.dataset.traceId === trace);
  }
}

// Spans in tree order: each span followed by its children (by start); a span whose parent is
// not in the trace is drawn as a root.
function treeOrder(spans) {
  const ids = new Set(spans.map((span) => span.span_id));
  const children = new Map();
  const roots = [];
  for (const span of spans) {
    if (span.parent_span_id && ids.has(span.parent_span_id)) {
      if (!children.has(span.parent_span_id)) children.set(span.parent_span_id, []);
      children.get(span.parent_span_id).push(span);
    } else {
      roots.push(span);
    }
  }
  const ordered = [];
  const visit = (span, depth) => {
    ordered.push({ span, depth });
    for (const child of children.get(span.span_id) || []) visit(child, depth + 1);
  };
  for (const root of roots) visit(root, 0);
  return ordered;
}

let current = null; // { trace_id, spans, start, total }

async function showTrace(traceId, spanId) {
  const section = $("#trace");
  if (!traceId) { section.hidden = true; current = null; return; }
  section.hidden = false;
  if (!current || current.trace_id !== traceId) {
    $("#trace-title").textContent = `Trace ${traceId}`;
    $("#details").hidden = true;
    try {
      const { spans } = await getJson(`/api/traces/${encodeURIComponent(traceId)}`);
      const start = Math.min(...spans.map((s) => Number(BigInt(s.start_unix_nano) / 1000n)));
      const end = Math.max(...spans.map((s) => Number(BigInt(s.end_unix_nano) / 1000n)));
      current = { trace_id: traceId, spans, start, total: Math.max(end - start, 1) };
    } catch (error) {
      current = null;
      $("#trace-meta").textContent = `Could not load the trace: ${error.message}`;
      $("#waterfall").replaceChildren();
      return;
    }
    drawWaterfall();
  }
  selectSpan(spanId);
}

function drawWaterfall() {
  const { spans, start, total } = current;
  const services = [...new Set(spans.map((s) => s.service))];
  $("#trace-meta").replaceChildren(
    `${spans.length} spans, ${formatMs(total / 1000)}, `, ...services.map(chip),
  );
  const rows = treeOrder(spans).map(({ span, depth }) => {
    const offset = (Number(BigInt(span.start_unix_nano) / 1000n) - start) / total;
    const width = Math.max(span.duration_ms * 1000 / total, 0);
    const bar = element("div", {
      class: "span-bar",
      style: {
        left: `${(offset * 100).toFixed(3)}%`,
        width: `${(width * 100).toFixed(3)}%`,
        background: serviceColour(span.service),
      },
    });
    const time = element("span", {
      class: "span-time",
      style: offset + width > 0.8
        ? { right: `${((1 - offset) * 100).toFixed(3)}%`, paddingRight: "4px" }
        : { left: `calc(${((offset + width) * 100).toFixed(3)}% + 4px)` },
    }, formatMs(span.duration_ms));
    const row = element(
      "div",
      {
        class: "span-row" + (span.status.code === "ERROR" ? " error" : ""),
        "data-span-id": span.span_id,
        "data-service": span.service,
        title: `${span.service}: ${span.name}`,
      },
      element(
        "div",
        { class: "span-label", style: { paddingLeft: `${depth * 1.1}em` } },
        chip(span.service), element("span", { class: "span-name" }, span.name),
      ),
      element("div", { class: "span-track" }, bar, time),
    );
    row.addEventListener("click", () => { location.hash = hashOf(current.trace_id, span.span_id); });
    return row;
  });
  $("#waterfall").replaceChildren(...rows);
  $("#waterfall").dataset.traceId = current.trace_id;
}

function valueText(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function table(object, sorted = true) {
  const keys = sorted ? Object.keys(object).sort() : Object.keys(object);
  if (!keys.length) return element("p", { class: "status" }, "none");
  return element("table", {}, ...keys.map((key) => element(
    "tr", {}, element("td", {}, key), element("td", {}, element("code", {}, valueText(object[key]))),
  )));
}

function selectSpan(spanId) {
  for (const row of document.querySelectorAll(".span-row")) {
    row.classList.toggle("selected", row.dataset.spanId === spanId);
  }
  const details = $("#details");
  const span = current && current.spans.find((s) => s.span_id === spanId);
  if (!span) { details.hidden = true; return; }
  const offsetMs = (Number(BigInt(span.start_unix_nano) / 1000n) - current.start) / 1000;
  const events = span.events.map((event) => element(
    "li", {},
    `${formatMs((Number(BigInt(event.time_unix_nano) / 1000n) - current.start) / 1000)}: `,
    element("strong", {}, event.name), table(event.attributes),
  ));
  const links = span.links.map((link) => element(
    "li", {},
    element("a", {
      class: "link-target",
      href: hashOf(link.trace_id, link.span_id),
      "data-trace-id": link.trace_id,
      "data-span-id": link.span_id,
    }, `trace ${link.trace_id} span ${link.span_id}`),
    table(link.attributes),
  ));
  details.replaceChildren(
    element("h3", {}, chip(span.service), span.name),
    table({
      kind: span.kind,
      status: span.status.code + (span.status.message ? `: ${span.status.message}` : ""),
      "span id": span.span_id,
      "parent span id": span.parent_span_id || "(root)",
      start: `+${formatMs(offsetMs)} (${formatTime(span.start_unix_nano)})`,
      duration: formatMs(span.duration_ms),
    }, false),
    element("h4", {}, "Attributes"), table(span.attributes),
    element("h4", {}, "Events"), events.length ? element("ul", {}, ...events) : element("p", { class: "status" }, "none"),
    element("h4", {}, "Links"), links.length ? element("ul", { id: "links" }, ...links) : element("p", { class: "status" }, "none"),
    element("h4", {}, "Resource"), table(span.resource),
  );
  details.hidden = false;
  details.dataset.spanId = span.span_id;
}

function route() {
  const { trace, span } = readHash();
  markSelectedTrace();
  showTrace(trace, span);
}

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadTraces();
});
$("#service").addEventListener("change", loadTraces);
window.addEventListener("hashchange", route);

(async () => {
  try {
    await loadServices();
  } catch (error) {
    $("#list-status").textContent = `Could not list services: ${error.message}`;
  }
  await loadTraces();
  route();
})();
