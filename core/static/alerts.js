// Alerts on the dashboard (docs/alerts.md): the active ones above the device cards,
// with an Acknowledge button, and each sensor's good and critical bands on its chart.
//
// Where the data comes from:
//   /api/alerts, /api/alerts/rules     loaded whenever dashboard.js (re)loads ("smartanom:reload")
//   {"type": "alert"} on the socket    dashboard.js passes each on as a "smartanom:alert" event
//   POST /api/alerts/{id}/ack          the button (a write token when auth is on)
// Uses dashboard.js's `state` (the token, the charts) and `getJSON`.
"use strict";

const alertState = {
  active: new Map(), // id -> alert, as /api/alerts gives it
  rules: new Map(), // sensor id -> {min, max, critical_min, critical_max}
  generation: 0,
};

const BAND_GOOD = "rgba(31,138,76,.10)";
const BAND_CRITICAL = "rgba(162,59,59,.10)";

async function loadAlerts() {
  const generation = ++alertState.generation;
  try {
    const [{ alerts }, { rules }] = await Promise.all([getJSON("/api/alerts"), getJSON("/api/alerts/rules")]);
    if (generation !== alertState.generation) return;
    alertState.active = new Map(alerts.map((a) => [a.id, a]));
    alertState.rules = new Map(rules.map((r) => [r.sensor_id, r]));
    renderAlerts();
    redrawCharts();
  } catch (error) {
    // dashboard.js reports a refused token or an unreachable hub from its own load.
    if (!(error instanceof TokenRefused)) console.warn("alerts:", error.message);
  }
}

function onAlert(message) {
  if (message.state === "resolved") alertState.active.delete(message.id);
  else alertState.active.set(message.id, message);
  renderAlerts();
}

function renderAlerts() {
  const box = $("#alerts");
  const alerts = [...alertState.active.values()].sort(
    (a, b) => (b.severity === "critical") - (a.severity === "critical") || Date.parse(a.started_at) - Date.parse(b.started_at),
  );
  box.hidden = alerts.length === 0;
  box.replaceChildren(...alerts.map(alertItem));
}

function alertItem(alert) {
  const item = $("#alert-item").content.firstElementChild.cloneNode(true);
  item.dataset.alertId = alert.id;
  item.dataset.severity = alert.severity;
  item.dataset.state = alert.state;
  $(".severity", item).textContent = alert.severity;
  $(".alert-title", item).textContent = alert.message.split(" (")[0];
  const sensor = alert.sensor_id !== null ? state.sensors.get(alert.sensor_id) : null;
  const unit = sensor ? UNIT_LABELS[sensor.unit] || sensor.unit : "";
  $(".alert-value", item).textContent =
    alert.value !== null ? `${formatValue(alert.value)} ${unit}`.trim() + (alert.threshold !== null ? ` (limit ${formatValue(alert.threshold)})` : "") : alert.trigger.replace("_", " ");
  $(".alert-since", item).textContent = `since ${since(Date.parse(alert.started_at))}`;
  $(".alert-advice", item).textContent = alert.recommendation;
  const button = $(".ack", item);
  if (alert.state === "acknowledged") {
    button.hidden = true;
    $(".acked", item).hidden = false;
    $(".acked", item).textContent = `acknowledged by ${alert.acknowledged_by}`;
  } else {
    button.addEventListener("click", () => acknowledge(alert.id, button));
  }
  return item;
}

function since(ms) {
  const when = new Date(ms);
  const sameDay = when.toDateString() === new Date().toDateString();
  return sameDay ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : when.toLocaleString();
}

async function acknowledge(id, button) {
  button.disabled = true;
  const headers = { "Content-Type": "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(`/api/alerts/${id}/ack`, { method: "POST", headers, body: "{}" }).catch(() => null);
  if (response && response.ok) return onAlert(await response.json()); // the socket's "acknowledged" says the same
  button.disabled = false;
  const body = response ? await response.json().catch(() => ({})) : {};
  const note = document.createElement("span");
  note.className = "alert-error";
  note.textContent = body.error ? body.error.message : "the hub did not answer; try again";
  button.after(note);
}

// --- bands on the charts ---------------------------------------------------------------

// A uPlot plugin per chart (dashboard.js asks window.smartanomChartPlugins): before the
// series are drawn, shade the good range green and beyond the critical limits red.
function bandsPlugin(container) {
  const sensorId = Number(container.closest("[data-sensor-id]").dataset.sensorId);
  return {
    hooks: {
      drawAxes: [
        (u) => {
          const rule = alertState.rules.get(sensorId);
          if (!rule) return;
          const { left, top, width, height } = u.bbox;
          const y = (value) => Math.min(top + height, Math.max(top, u.valToPos(value, "y", true)));
          const shade = (from, to, colour) => {
            const a = y(from), b = y(to);
            if (Math.abs(a - b) < 0.5) return;
            u.ctx.fillStyle = colour;
            u.ctx.fillRect(left, Math.min(a, b), width, Math.abs(a - b));
          };
          const low = u.scales.y.min, high = u.scales.y.max;
          u.ctx.save();
          const goodLow = rule.min ?? rule.critical_min ?? low, goodHigh = rule.max ?? rule.critical_max ?? high;
          shade(Math.max(goodLow, low), Math.min(goodHigh, high), BAND_GOOD);
          if (rule.critical_min !== null && rule.critical_min > low) shade(low, rule.critical_min, BAND_CRITICAL);
          if (rule.critical_max !== null && rule.critical_max < high) shade(rule.critical_max, high, BAND_CRITICAL);
          u.ctx.restore();
          container.dataset.bands = "drawn";
        },
      ],
    },
  };
}

function redrawCharts() {
  for (const sensor of state.sensors.values()) if (sensor.chart.plot) sensor.chart.plot.redraw(false);
}

window.smartanomChartPlugins = [bandsPlugin];
document.addEventListener("smartanom:reload", loadAlerts);
document.addEventListener("smartanom:alert", (event) => onAlert(event.detail));
// dashboard.js started loading before this script ran: load the alerts now too.
loadAlerts();
