// The live dashboard: one card per device, each sensor's value and a chart.
//
// Where the data comes from (docs/dashboard.md):
//   /api/devices, /api/sensors      the cards, current status and latest values
//   /api/sensors/{id}/readings      each chart's history (raw for 1 h, buckets for 24 h and 7 d)
//   /ws/sensor-data/                sensor_data_update and device_status, applied as they come
// After the connection drops (hub restart, Wi-Fi) it reconnects with backoff and
// reloads everything, so nothing missed while away stays missing.
"use strict";

const WINDOWS = {
  "1h": { seconds: 3600, bucket: null },
  "24h": { seconds: 86400, bucket: "5m", width: 300 },
  "7d": { seconds: 7 * 86400, bucket: "1h", width: 3600 },
};
const UNIT_LABELS = { celsius: "°C", percent: "%", ph: "pH" };
const RAW_LIMIT = 10000; // the API's maximum page
const PING_EVERY = 15000; // ms; a connection silent for 3 pings is considered dead
const RETRY_MAX = 15000; // ms; backoff ceiling
const OVERLAP = 20; // s; more than the longest storage flush interval (10 s)

const state = {
  window: WINDOWS[localStorage.getItem("smartanom.window")] ? localStorage.getItem("smartanom.window") : "1h",
  devices: new Map(), // id -> {card, statusEl, lastEl, lastTs}
  sensors: new Map(), // id -> {deviceId, unit, valueEl, chart}
  socket: null,
  retries: 0,
  lastMessage: 0,
  generation: 0, // bumps on every reload, so late answers of an older one are dropped
};

const $ = (selector, root = document) => root.querySelector(selector);

// --- connection ----------------------------------------------------------------

function setConnection(kind, text) {
  const el = $("#connection");
  el.dataset.state = kind;
  el.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sensor-data/`);
  state.socket = socket;
  socket.onopen = () => {
    const wasDown = state.retries > 0;
    state.retries = 0;
    state.lastMessage = Date.now();
    setConnection("live", "live");
    if (wasDown) reload(); // catch up on what happened while away
  };
  socket.onmessage = (event) => {
    state.lastMessage = Date.now();
    const message = JSON.parse(event.data);
    if (message.type === "sensor_data_update") onReading(message);
    else if (message.type === "device_status") onStatus(message);
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    const delay = Math.min(RETRY_MAX, 500 * 2 ** state.retries) * (0.8 + Math.random() * 0.4);
    state.retries += 1;
    setConnection("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
    setTimeout(connect, delay);
  };
}

// A hub that vanished without closing the connection (power cut, Wi-Fi) is
// noticed by silence: the hub answers every ping.
setInterval(() => {
  const socket = state.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (Date.now() - state.lastMessage > 3 * PING_EVERY) socket.close();
  else socket.send(JSON.stringify({ type: "ping" }));
}, PING_EVERY);

// --- loading ---------------------------------------------------------------------

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ? body.error.message : `${url}: HTTP ${response.status}`);
  return body;
}

function showProblem(text) {
  const el = $("#problem");
  el.hidden = !text;
  el.textContent = text || "";
}

async function reload() {
  const generation = ++state.generation;
  try {
    const [{ devices }, { sensors }] = await Promise.all([getJSON("/api/devices"), getJSON("/api/sensors")]);
    if (generation !== state.generation) return;
    render(devices);
    for (const sensor of sensors) {
      if (sensor.latest) showValue(sensor.id, sensor.latest.value);
    }
    showProblem("");
    await Promise.all(devices.flatMap((d) => d.sensors.map((s) => loadHistory(s.id, generation))));
  } catch (error) {
    if (generation === state.generation) showProblem(`Could not load from the hub: ${error.message}`);
  }
}

function render(devices) {
  for (const sensor of state.sensors.values()) sensor.chart.destroy();
  state.devices.clear();
  state.sensors.clear();
  const main = $("#devices");
  main.replaceChildren();
  for (const device of devices) {
    const card = $("#device-card").content.firstElementChild.cloneNode(true);
    card.dataset.deviceId = device.id;
    $(".device-name", card).textContent = device.name;
    const entry = { card, statusEl: $(".status", card), lastEl: $(".last-reading", card), lastTs: null };
    state.devices.set(device.id, entry);
    showStatus(device.id, device.status);
    if (device.last_reading) showLastReading(device.id, Date.parse(device.last_reading));
    main.append(card);
    for (const sensor of device.sensors) {
      const row = $("#sensor-row").content.firstElementChild.cloneNode(true);
      row.dataset.sensorId = sensor.id;
      $(".sensor-name", row).textContent = sensor.name;
      $(".unit", row).textContent = UNIT_LABELS[sensor.unit] || sensor.unit;
      $(".sensors", card).append(row);
      state.sensors.set(sensor.id, {
        deviceId: device.id,
        unit: sensor.unit,
        valueEl: $(".value", row),
        chart: new Chart($(".chart", row), UNIT_LABELS[sensor.unit] || sensor.unit),
      });
    }
  }
}

// Stored history reaches the database up to storage.flush_interval (at most
// 10 s) after a reading is broadcast. So bucketed history ends OVERLAP seconds
// ago and the raw readings since then are folded in here; live readings newer
// than the last stored one are added on top. Nothing is counted twice or lost.
async function loadHistory(sensorId, generation) {
  const win = WINDOWS[state.window];
  const now = Date.now();
  const since = new Date(now - win.seconds * 1000).toISOString();
  const url = `/api/sensors/${sensorId}/readings?`;
  let buckets = [];
  let raw;
  if (win.bucket) {
    const split = new Date(now - OVERLAP * 1000).toISOString();
    [{ buckets }, { readings: raw }] = await Promise.all([
      getJSON(url + new URLSearchParams({ since, until: split, bucket: win.bucket, order: "asc", limit: RAW_LIMIT })),
      getJSON(url + new URLSearchParams({ since: split, order: "asc", limit: RAW_LIMIT })),
    ]);
  } else {
    // Newest first, so a sensor busier than RAW_LIMIT per hour still shows its latest readings.
    ({ readings: raw } = await getJSON(url + new URLSearchParams({ since, limit: RAW_LIMIT })));
    raw.reverse();
  }
  const sensor = state.sensors.get(sensorId);
  if (generation !== state.generation || !sensor) return;
  sensor.chart.setHistory(win, buckets, raw);
}

// --- live updates ------------------------------------------------------------------

function onReading(message) {
  const sensor = state.sensors.get(message.sensor_id);
  if (!sensor) return;
  const ts = Date.parse(message.timestamp);
  showValue(message.sensor_id, message.value);
  showLastReading(sensor.deviceId, ts);
  sensor.chart.add(ts / 1000, message.value);
}

function onStatus(message) {
  showStatus(message.device_id, message.status);
}

function showValue(sensorId, value) {
  const sensor = state.sensors.get(sensorId);
  if (sensor) sensor.valueEl.textContent = formatValue(value);
}

function formatValue(value) {
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: Math.abs(value) >= 100 ? 0 : 2 });
}

function showStatus(deviceId, status) {
  const device = state.devices.get(deviceId);
  if (!device) return;
  device.statusEl.dataset.status = status;
  device.statusEl.textContent = status;
  device.card.dataset.status = status;
}

function showLastReading(deviceId, ts) {
  const device = state.devices.get(deviceId);
  if (!device || (device.lastTs !== null && ts < device.lastTs)) return;
  device.lastTs = ts;
  const when = new Date(ts);
  const sameDay = when.toDateString() === new Date().toDateString();
  device.lastEl.textContent = `last reading ${sameDay ? when.toLocaleTimeString() : when.toLocaleString()}`;
}

// --- charts --------------------------------------------------------------------------

// One sensor's chart: raw values for the 1 h window; for longer windows the
// mean per bucket with a band from min to max. Live readings extend it: raw
// ones are appended, bucketed ones folded into the current bucket.
class Chart {
  constructor(container, unitLabel) {
    this.container = container;
    this.unitLabel = unitLabel;
    this.win = null;
    this.data = [[], [], [], []]; // x (epoch s), mean or value, min, max
    this.counts = []; // readings per bucket, to fold more in
    this.recent = []; // [t, value, received] of the last OVERLAP seconds' live readings
    this.plot = null;
    this.resizer = new ResizeObserver(() => this.plot && this.plot.setSize(this.size()));
    this.resizer.observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth), height: 130 };
  }

  setHistory(win, buckets, raw) {
    this.win = win;
    const x = buckets.map((b) => Date.parse(b.timestamp) / 1000);
    this.data = [x, buckets.map((b) => b.mean), buckets.map((b) => b.min), buckets.map((b) => b.max)];
    this.counts = buckets.map((b) => b.count);
    for (const r of raw) this.fold(Date.parse(r.timestamp) / 1000, r.value);
    const stored = raw.length ? Date.parse(raw[raw.length - 1].timestamp) / 1000 : -Infinity;
    for (const [t, value] of this.recent) if (t > stored) this.fold(t, value);
    this.build();
  }

  build() {
    if (this.plot) this.plot.destroy();
    const bucketed = Boolean(this.win.bucket);
    const stroke = "#2c6e9b";
    const series = [{}, { label: bucketed ? "mean" : "value", stroke, width: 1.5 }];
    const options = {
      ...this.size(),
      series,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [
        { stroke: "#5f6f66", grid: { stroke: "#eef1ef" }, space: 80 },
        { stroke: "#5f6f66", grid: { stroke: "#eef1ef" }, size: 48, label: this.unitLabel, labelSize: 14 },
      ],
    };
    if (bucketed) {
      const faint = "rgba(44,110,155,.35)";
      series.push({ label: "min", stroke: faint, width: 1 }, { label: "max", stroke: faint, width: 1 });
      options.bands = [{ series: [3, 2], fill: "rgba(44,110,155,.12)" }];
    }
    this.plot = new uPlot(options, this.series(), this.container);
    this.container.dataset.points = this.data[0].length;
    this.container.dataset.chartWindow = Object.keys(WINDOWS).find((k) => WINDOWS[k] === this.win);
  }

  // What uPlot draws: the data with a null wherever readings stopped for a
  // while (hub down, device dropped out), so no line pretends to span the gap.
  series() {
    const columns = this.win.bucket ? this.data : this.data.slice(0, 2);
    const x = columns[0];
    if (x.length < 3) return columns;
    const gap = this.win.bucket ? 2.5 * this.win.width : Math.max(30, 5 * medianStep(x));
    const out = columns.map(() => []);
    for (let i = 0; i < x.length; i++) {
      if (i && x[i] - x[i - 1] > gap) {
        out[0].push((x[i] + x[i - 1]) / 2);
        for (let c = 1; c < out.length; c++) out[c].push(null);
      }
      for (let c = 0; c < out.length; c++) out[c].push(columns[c][i]);
    }
    return out;
  }

  // One reading into the data: a new point (raw), or into its bucket. Readings
  // older than the last point are already part of the history and skipped.
  fold(t, value) {
    const [x, mean, min, max] = this.data;
    const n = x.length;
    if (!this.win.bucket) {
      if (n && t <= x[n - 1]) return;
      x.push(t); mean.push(value);
      return;
    }
    const start = Math.floor(t / this.win.width) * this.win.width;
    if (n && x[n - 1] === start) {
      const count = this.counts[n - 1];
      mean[n - 1] = (mean[n - 1] * count + value) / (count + 1);
      min[n - 1] = Math.min(min[n - 1], value);
      max[n - 1] = Math.max(max[n - 1], value);
      this.counts[n - 1] = count + 1;
    } else if (!n || start > x[n - 1]) {
      x.push(start); mean.push(value); min.push(value); max.push(value); this.counts.push(1);
    }
  }

  add(t, value) {
    const received = Date.now();
    this.recent.push([t, value, received]);
    while (this.recent.length && this.recent[0][2] < received - OVERLAP * 1000) this.recent.shift();
    if (!this.plot) return; // the history is on its way; setHistory adds this from `recent`
    this.fold(t, value);
    // Drop what slid out of the window on the left.
    const x = this.data[0];
    const oldest = received / 1000 - this.win.seconds - (this.win.width || 0);
    let drop = 0;
    while (drop < x.length - 1 && x[drop] < oldest) drop++;
    if (drop) {
      for (const column of this.data) column.splice(0, drop);
      this.counts.splice(0, drop);
    }
    this.plot.setData(this.series());
    this.container.dataset.points = x.length;
  }

  destroy() {
    this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
  }
}

function medianStep(x) {
  const steps = [];
  for (let i = 1; i < x.length; i++) steps.push(x[i] - x[i - 1]);
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)];
}

// --- window choice -----------------------------------------------------------------------

function showWindowButtons() {
  for (const button of document.querySelectorAll("[data-window]")) {
    button.setAttribute("aria-pressed", String(button.dataset.window === state.window));
  }
}

for (const button of document.querySelectorAll("[data-window]")) {
  button.addEventListener("click", () => {
    state.window = button.dataset.window;
    localStorage.setItem("smartanom.window", state.window);
    showWindowButtons();
    const generation = ++state.generation;
    Promise.all([...state.sensors.keys()].map((id) => loadHistory(id, generation))).catch((error) =>
      showProblem(`Could not load history: ${error.message}`));
  });
}

showWindowButtons();
connect();
reload();
