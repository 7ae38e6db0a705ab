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

async function loadHistory(sensorId, generation) {
  const win = WINDOWS[state.window];
  const since = new Date(Date.now() - win.seconds * 1000).toISOString();
  const params = new URLSearchParams({ since });
  if (win.bucket) params.set("bucket", win.bucket);
  params.set("limit", RAW_LIMIT); // raw: newest first, so a busy sensor still shows its latest hour
  const body = await getJSON(`/api/sensors/${sensorId}/readings?${params}`);
  const sensor = state.sensors.get(sensorId);
  if (generation !== state.generation || !sensor) return;
  sensor.chart.setHistory(win, body.readings || body.buckets);
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
  device.lastEl.dateTime = when.toISOString();
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
    this.counts = [];
    this.pending = []; // live readings that arrived before the history
    this.plot = null;
    this.resizer = new ResizeObserver(() => this.plot && this.plot.setSize(this.size()));
    this.resizer.observe(container);
  }

  size() {
    return { width: Math.max(200, this.container.clientWidth), height: 130 };
  }

  setHistory(win, rows) {
    this.win = win;
    const bucketed = Boolean(win.bucket);
    const sorted = rows.slice().sort((a, b) => Date.parse(a.timestamp) - Date.parse(b.timestamp));
    const x = sorted.map((r) => Date.parse(r.timestamp) / 1000);
    this.data = bucketed
      ? [x, sorted.map((r) => r.mean), sorted.map((r) => r.min), sorted.map((r) => r.max)]
      : [x, sorted.map((r) => r.value), [], []];
    this.counts = bucketed ? sorted.map((r) => r.count) : [];
    const last = x.length ? x[x.length - 1] : -Infinity;
    const pending = this.pending.filter(([t]) => t > last);
    this.pending = [];
    this.build();
    for (const [t, v] of pending) this.add(t, v);
  }

  build() {
    if (this.plot) this.plot.destroy();
    const bucketed = Boolean(this.win.bucket);
    const stroke = "#2c6e9b";
    const series = [{}, { label: bucketed ? "mean" : "value", stroke, width: 1.5, spanGaps: false }];
    const options = {
      ...this.size(),
      series,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [{ stroke: "#5f6f66", grid: { stroke: "#eef1ef" } }, { stroke: "#5f6f66", grid: { stroke: "#eef1ef" }, size: 48, label: this.unitLabel, labelSize: 14 }],
    };
    let data = this.data.slice(0, 2);
    if (bucketed) {
      series.push({ label: "min", stroke: "rgba(44,110,155,.35)", width: 1 }, { label: "max", stroke: "rgba(44,110,155,.35)", width: 1 });
      options.bands = [{ series: [3, 2], fill: "rgba(44,110,155,.12)" }];
      data = this.data;
    }
    this.plot = new uPlot(options, data, this.container);
    this.container.dataset.points = this.data[0].length;
    this.container.dataset.window = Object.keys(WINDOWS).find((k) => WINDOWS[k] === this.win);
  }

  add(t, value) {
    if (!this.plot) {
      this.pending.push([t, value]);
      return;
    }
    const [x, mean, min, max] = this.data;
    const n = x.length;
    if (this.win.bucket) {
      const start = Math.floor(t / this.win.width) * this.win.width;
      if (n && x[n - 1] === start) {
        const count = this.counts[n - 1];
        mean[n - 1] = (mean[n - 1] * count + value) / (count + 1);
        min[n - 1] = Math.min(min[n - 1], value);
        max[n - 1] = Math.max(max[n - 1], value);
        this.counts[n - 1] = count + 1;
      } else if (!n || start > x[n - 1]) {
        x.push(start); mean.push(value); min.push(value); max.push(value); this.counts.push(1);
      } else return; // older than the chart's last bucket: already in the history
    } else if (!n || t >= x[n - 1]) {
      x.push(t); mean.push(value);
    } else return;
    // Drop what slid out of the window on the left.
    const oldest = Date.now() / 1000 - this.win.seconds;
    let drop = 0;
    while (drop < x.length - 1 && x[drop] < oldest - (this.win.width || 0)) drop++;
    if (drop) {
      for (const column of this.data) column.splice(0, drop);
      this.counts.splice(0, drop);
    }
    this.plot.setData(this.win.bucket ? this.data : this.data.slice(0, 2));
    this.container.dataset.points = x.length;
  }

  destroy() {
    this.resizer.disconnect();
    if (this.plot) this.plot.destroy();
  }
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
