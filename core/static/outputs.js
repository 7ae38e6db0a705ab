// Outputs on the dashboard: each relay, pump and valve with its state, why, and a switch.
//
// Data (docs/control.md, docs/dashboard.md):
//   /api/outputs                       the list, loaded with the page and after every reconnect
//   output_state on /ws/sensor-data/   each switch as it happens (dashboard.js passes it on)
//   POST /api/outputs/{id}/override    the switch: on or off for the chosen time (write role)
//   DELETE /api/outputs/{id}/override  "Auto": back to the output's schedule or rule
// Uses dashboard.js's `state.token`; shown only when the hub has outputs.
"use strict";

const OVERRIDE_CHOICES = [["15 min", 900], ["1 h", 3600], ["4 h", 14400]];
const outputRows = new Map(); // id -> {row, stateEl, whyEl, toggle, auto}

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

function renderOutputs(list) {
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
    toggle.addEventListener("change", () => switchOutput(output.id, toggle.checked, Number($(".output-for", row).value)));
    entry.auto.addEventListener("click", () => clearOverride(output.id));
    body.append(row);
    showOutput(output.id, output);
  }
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
    renderOutputs(data.outputs);
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
  if (message.type === "output_state" && message.ok) showOutput(message.output_id, message);
});
document.addEventListener("smartanom:reload", loadOutputs);
