// The Calls page: the call list (with filters), one call's transcript, recording, latency per turn, summary and the
// messages the caller left.
// Everything comes from this server's /api/calls; callers' words are put in as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 3000; // while a call is in progress, the list and the open call follow it
let selected = new URLSearchParams(location.search).get("id");
let refreshTimer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function length(call) {
  const from = Date.parse(call.answered_at || call.started_at);
  const to = call.ended_at ? Date.parse(call.ended_at) : Date.now();
  const seconds = Math.max(0, Math.round((to - from) / 1000));
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

const caller = (call) => call.caller_number || (call.kind === "web" ? "web visitor" : "unknown");
// status: in_progress, ended, or unfinished (no end recorded, older than any call lasts: its process was killed)
const live = (call) => call.status === "in_progress";
const ending = (call) => (live(call) ? "in progress" : call.status === "unfinished" ? "unfinished"
  : (call.end_reason || "ended").replaceAll("_", " "));

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showError(error) {
  $("error").hidden = !error;
  $("error").textContent = error ? String(error.message || error) : "";
}

function query() {
  const params = new URLSearchParams();
  const number = $("number").value.trim();
  if (number) params.set("number", number);
  if ($("since").value) params.set("since", new Date($("since").value).toISOString());
  return params.toString();
}

async function loadList() {
  const { calls } = await getJSON(`/api/calls?${query()}`);
  const rows = calls.map((call) => {
    const status = el("td", live(call) ? { class: "live" } : {}, ending(call));
    const row = el("tr", { "data-id": call.id, class: call.id === selected ? "selected" : "" },
      el("td", {}, when(call.started_at)), el("td", {}, caller(call)), el("td", {}, length(call)), status,
      el("td", {}, call.outcome || ""));
    row.addEventListener("click", () => select(call.id));
    return row;
  });
  $("calls").tBodies[0].replaceChildren(...rows);
  $("no-calls").hidden = calls.length > 0;
  $("status").textContent = `${calls.length} call${calls.length === 1 ? "" : "s"}` +
    (calls.some(live) ? ", some in progress" : "");
  return calls;
}

function facts(call) {
  const rows = [["Caller", caller(call)], ["Dialled", call.dialled_number], ["Kind", call.kind],
    ["Started", when(call.started_at)], ["Ended", call.ended_at ? when(call.ended_at) : ending(call)],
    ["Length", length(call)], ["End reason", call.ended_at ? ending(call) + (call.end_detail ? ` (${call.end_detail})` : "") : ""],
    ["Model", [call.provider, call.llm_model].filter(Boolean).join(" · ")],
    ["Webhook", call.webhook_state ? `${call.webhook_state} after ${call.webhook_attempts} tr${call.webhook_attempts === 1 ? "y" : "ies"}` +
      (call.webhook_last_error ? ` (${call.webhook_last_error})` : "") : ""]];
  return rows.filter(([, value]) => value).flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]);
}

const MESSAGE_REASONS = { asked: "the caller asked to leave it", no_colleague: "no colleague could take the call",
  transfer_failed: "the transfer did not go through", unanswered: "a question the facts do not answer",
  request: "a request only the staff can act on" };

function messages(call) {
  return (call.messages || []).map((m) => el("li", { class: m.handled_at ? "handled" : "open" },
    el("strong", {}, `Message from ${m.caller_name || "a caller who gave no name"}`),
    ` · ${m.callback_number ? `call back on ${m.callback_number}` : "no number to call back"}`,
    el("p", {}, m.text || "(no message)"),
    el("small", {}, `${MESSAGE_REASONS[m.reason] || m.reason} · ${m.handled_at ? `dealt with ${when(m.handled_at)}` : "open"}`)));
}

function transcript(turns) {
  return turns.map((turn) => {
    const time = turn.started_at ? new Date(turn.started_at).toLocaleTimeString() : "";
    const text = turn.role === "tool" ? `action: ${turn.tool_name || "tool"}${turn.text ? ` → ${turn.text}` : ""}` : turn.text;
    const intent = turn.intent ? ` · ${turn.intent}${turn.intent_confidence != null ? ` ${Math.round(turn.intent_confidence * 100)}%` : ""}` : "";
    const classes = [turn.role, turn.interrupted ? "interrupted" : ""].filter(Boolean).join(" ");
    return el("li", { class: classes, "data-seq": turn.seq }, el("small", {}, `${turn.role === "user" ? "Caller" : turn.role === "assistant" ? "Assistant" : ""} ${time}${intent}`), text);
  });
}

const SEGMENTS = [
  { name: "end of turn", color: "#9aa3b5", value: (m, before) => before.end_of_turn_delay },
  { name: "LLM first token", color: "#3a6ff7", value: (m) => m.llm_ttft ?? m.llm_node_ttft },
  { name: "TTS first byte", color: "#1a8f3c", value: (m) => m.tts_ttfb ?? m.tts_node_ttfb },
];

// One row per answer: the caller's end-of-turn wait, the LLM's first token and the TTS's first byte, side by side
// on one time axis, and the end-to-end delay (livekit-agents' e2e_latency) written after them.
function latencyChart(turns) {
  const rows = [];
  let before = {};
  for (const turn of turns) {
    const m = turn.metrics || {};
    if (turn.role === "user") before = m;
    if (turn.role !== "assistant" || !Object.keys(m).length) continue;
    const parts = SEGMENTS.map((s) => Number(s.value(m, before)) || 0);
    before = {};
    // The greeting (said from audio made in advance) has no delays to draw.
    if (parts.some((seconds) => seconds > 0) || m.e2e_latency != null) rows.push({ seq: turn.seq, parts, e2e: m.e2e_latency });
  }
  const chart = $("latency-chart");
  $("latency").hidden = rows.length === 0;
  if (!rows.length) return chart.replaceChildren();
  const width = 560, label = 60, right = 70, rowHeight = 22, top = 22;
  const longest = Math.max(0.5, ...rows.map((r) => Math.max(r.e2e || 0, r.parts.reduce((a, b) => a + b, 0))));
  const scale = (width - label - right) / longest;
  chart.setAttribute("viewBox", `0 0 ${width} ${top + rows.length * rowHeight + 4}`);
  const nodes = SEGMENTS.map((s, i) => [svg("rect", { x: label + i * 130, y: 4, width: 10, height: 10, fill: s.color }),
    svg("text", { x: label + i * 130 + 14, y: 13 }, s.name)]).flat();
  rows.forEach((row, i) => {
    const y = top + i * rowHeight;
    nodes.push(svg("text", { x: 0, y: y + 14 }, `turn ${row.seq}`));
    let x = label;
    row.parts.forEach((seconds, j) => {
      if (!seconds) return;
      const rect = svg("rect", { x, y: y + 3, width: Math.max(1, seconds * scale), height: rowHeight - 8, fill: SEGMENTS[j].color, class: "bar" });
      rect.append(svg("title", {}, `${SEGMENTS[j].name}: ${seconds.toFixed(2)} s`));
      nodes.push(rect);
      x += seconds * scale;
    });
    if (row.e2e != null) {
      nodes.push(svg("line", { x1: label + row.e2e * scale, x2: label + row.e2e * scale, y1: y + 1, y2: y + rowHeight - 3, stroke: "#b42318", "stroke-width": 2 }));
    }
    nodes.push(svg("text", { x: width - right + 6, y: y + 14, class: "e2e" }, row.e2e != null ? `${Number(row.e2e).toFixed(2)} s` : ""));
  });
  chart.replaceChildren(...nodes);
}

async function loadCall(id) {
  const call = await getJSON(`/api/calls/${encodeURIComponent(id)}`);
  $("detail").hidden = false;
  $("call-title").textContent = `${caller(call)} · ${when(call.started_at)}`;
  $("call-title").className = live(call) ? "live" : "";
  $("call-facts").replaceChildren(...facts(call));
  $("summary").textContent = call.summary ? `${call.summary}${call.outcome ? ` — ${call.outcome}` : ""}` : "";
  $("messages").replaceChildren(...messages(call));
  const audio = $("recording");
  audio.hidden = !call.recording_url;
  if (call.recording_url && audio.getAttribute("src") !== call.recording_url) audio.src = call.recording_url;
  latencyChart(call.turns);
  $("transcript").replaceChildren(...transcript(call.turns));
  return call;
}

async function refresh() {
  clearTimeout(refreshTimer);
  try {
    const calls = await loadList();
    const call = selected ? await loadCall(selected) : null;
    showError(null);
    // Follow calls in progress (and a just-ended call until its summary arrives).
    const awaitingSummary = call && call.ended_at && !call.summary && Date.now() - Date.parse(call.ended_at) < 120_000;
    if (calls.some(live) || (call && live(call)) || awaitingSummary) {
      refreshTimer = setTimeout(refresh, REFRESH_MS);
    }
  } catch (error) {
    showError(error);
    $("status").textContent = "Could not load calls";
  }
}

function select(id) {
  selected = id;
  history.replaceState(null, "", `?id=${encodeURIComponent(id)}`);
  for (const row of $("calls").tBodies[0].rows) row.classList.toggle("selected", row.dataset.id === id);
  refresh();
}

$("filters").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
refresh();
