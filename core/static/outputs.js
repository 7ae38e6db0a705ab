// Outputs on the dashboard: each relay, pump and valve with its state, why, and a switch.
//
// Data (docs/control.md, docs/dashboard.md):
//   /api/outputs                       the list, loaded with the page and after every reconnect
//   output_state on /ws/sensor-data/   each switch as it happens (dashboard.js passes it on)
//   POST /api/outputs/{id}/override    the switch: on or off for the chosen time (write role)
//   DELETE /api/outputs/{id}/override  "Auto": back to the output's schedule or rule
// A dosing pump gets only "Off for" (the hub refuses "on" for it with 409: running it by
// hand would bypass its limits) and a line with its controller's state from /api/outputs
// (holding and why, dosing, mixing; ml in the last 24 h and hour), refreshed when it switches.
// Uses dashboard.js's `state.token`; shown only when the hub has outputs.
"use strict";

const OVERRIDE_CHOICES = [["15 min", 900], ["1 h", 3600], ["4 h", 14400]];
const outputRows = new Map(); // id -> {row, stateEl, whyEl, toggle, auto, dosingEl?}

async function outputsRequest(method, url, body) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (method !== "GET") headers["Content-Type"] = "application/json"; // the hub refuses changes without it
  const response = await fetch(url, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const data = await response.json();
  if (!response.ok) {
    const message = data.error ? data.error.message : `HTTP ${response.status}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return data;
}

function outputsProblem(text) {
  const el = $("#outputs-problem");
  el.hidden = !text;
  el.textContent = text || "";
}

function showOutput(id, data) {
  const entry = outputRows.get(id);
  if (!entry) return;
  const word = data.state || "unknown";
  entry.stateEl.textContent = data.available === false ? `${word} (unreachable)` : word;
  entry.stateEl.dataset.state = data.available === false ? "unavailable" : word;
  entry.toggle.checked = data.state === "on";
  entry.toggle.setAttribute("aria-checked", String(data.state === "on"));
  const when = data.changed_at || data.timestamp;
  const time = when ? new Date(when).toLocaleTimeString() : "";
  entry.whyEl.textContent = [data.source, data.reason].filter(Boolean).join(": ") + (time ? ` (${time})` : "");
  if ("override" in data) entry.auto.hidden = !data.override;
}

function dosingText(doser) {
  let doing = "watching";
  if (doser.held) doing = `holding: ${doser.held}`;
  else if (doser.pumping) doing = "dosing now";
  else if (doser.mixing_until) doing = `mixing until ${new Date(doser.mixing_until).toLocaleTimeString()}`;
  return `Dosing ${doser.id}: ${doing} · ${doser.ml_last_day} ml in 24 h, ${doser.ml_last_hour} ml in 1 h`;
}

function showDosing(dosing) {
  for (const doser of dosing) {
    const entry = outputRows.get(doser.output_id);
    if (entry && entry.dosingEl) entry.dosingEl.textContent = dosingText(doser);
  }
}

function makeDosingRow(entry, row, id) {
  // Only "off" is offered: the switch is replaced by a button that overrides the pump off.
  $(".switch", row).hidden = true;
  const stop = document.createElement("button");
  stop.type = "button";
  stop.className = "output-stop";
  stop.textContent = "Off for";
  Object.assign(stop.style, { minHeight: "2rem", font: "inherit" }); // a finger-sized target on a phone
  stop.addEventListener("click", () => switchOutput(id, false, Number($(".output-for", row).value)));
  $(".output-for", row).before(stop);
  entry.dosingEl = document.createElement("p");
  entry.dosingEl.className = "output-dosing";
  Object.assign(entry.dosingEl.style, { margin: ".2rem 0", fontSize: ".85rem" });
  entry.whyEl.after(entry.dosingEl);
}

function renderOutputs(list, dosing = []) {
  const section = $("#outputs");
  const body = $("#output-list");
  body.replaceChildren();
  outputRows.clear();
  section.hidden = list.length === 0;
  for (const output of list) {
    const row = $("#output-row").content.firstElementChild.cloneNode(true);
    row.dataset.outputId = output.id;
    $(".output-name", row).textContent = output.name;
    const toggle = $(".output-switch", row);
    toggle.setAttribute("aria-label", `Switch ${output.name}`);
    const entry = { row, stateEl: $(".output-state", row), whyEl: $(".output-why", row), toggle, auto: $(".output-auto", row) };
    outputRows.set(output.id, entry);
    if (dosing.some((doser) => doser.output_id === output.id)) makeDosingRow(entry, row, output.id);
    toggle.addEventListener("change", () => switchOutput(output.id, toggle.checked, Number($(".output-for", row).value)));
    entry.auto.addEventListener("click", () => clearOverride(output.id));
    body.append(row);
    showOutput(output.id, output);
  }
  showDosing(dosing);
}

let dosingRefresh = null;
function refreshDosing() {
  // Several switches arrive together (a pulse's on, an interlock's off): one request for them.
  clearTimeout(dosingRefresh);
  dosingRefresh = setTimeout(async () => {
    try {
      showDosing((await outputsRequest("GET", "/api/outputs")).dosing);
    } catch (error) {
      // The next switch or reload tries again; the output's own state is already shown.
    }
  }, 250);
}

async function switchOutput(id, on, seconds) {
  try {
    showOutput(id, await outputsRequest("POST", `/api/outputs/${encodeURIComponent(id)}/override`, { state: on ? "on" : "off", duration: seconds }));
    outputsProblem("");
  } catch (error) {
    outputsProblem(error.status === 403 ? "Switching outputs needs a token with the write role." : `Not switched: ${error.message}`);
    loadOutputs(); // show the real state again
  }
}

async function clearOverride(id) {
  try {
    showOutput(id, await outputsRequest("DELETE", `/api/outputs/${encodeURIComponent(id)}/override`));
    outputsProblem("");
  } catch (error) {
    outputsProblem(error.status === 403 ? "Switching outputs needs a token with the write role." : error.message);
  }
}

async function loadOutputs() {
  try {
    const data = await outputsRequest("GET", "/api/outputs");
    renderOutputs(data.outputs, data.dosing || []);
    $("#outputs-dry-run").hidden = !data.dry_run;
  } catch (error) {
    if (error.status !== 401) outputsProblem(`Could not load the outputs: ${error.message}`);
  }
}

for (const [label, seconds] of OVERRIDE_CHOICES) {
  document.querySelector("#output-row").content.querySelector(".output-for").append(new Option(label, seconds));
}

document.addEventListener("smartanom:message", (event) => {
  const message = event.detail;
  if (message.type !== "output_state") return;
  if (message.ok) showOutput(message.output_id, message);
  const entry = outputRows.get(message.output_id);
  if (entry && entry.dosingEl) refreshDosing();
});
document.addEventListener("smartanom:reload", loadOutputs);
