// The live dashboard: one card per device, each sensor's value and a chart.
//
// Where the data comes from (docs/dashboard.md):
//   /api/devices, /api/sensors      the cards, current status and latest values
//   /api/readings?sensors=...      every chart's history in one request (raw for 1 h, buckets for 24 h to 1 year)
//   /ws/sensor-data/                sensor_data_update and device_status, applied as they come
// After the connection drops (hub restart, Wi-Fi) it reconnects with backoff and
// reloads everything, so nothing missed while away stays missing.
// With auth on (docs/security.md) every request carries the token; when the hub
// refuses it, the page asks for one and waits instead of retrying.
"use strict";

const WINDOWS = {
  "1h": { seconds: 3600, bucket: null },
  "24h": { seconds: 86400, bucket: "5m", width: 300 },
  "7d": { seconds: 7 * 86400, bucket: "1h", width: 3600 },
  // Served from the hourly and daily rollups (docs/api.md): a year is 365 points.
  "30d": { seconds: 30 * 86400, bucket: "1h", width: 3600 },
  "1y": { seconds: 365 * 86400, bucket: "1d", width: 86400 },
};
const UNIT_LABELS = { celsius: "°C", percent: "%", ph: "pH", "umol/m2/s": "µmol/m²/s", "mol/m2/d": "mol/m²/d" };
const RAW_LIMIT = 10000; // the API's maximum page
const PING_EVERY = 15000; // ms; a connection silent for 3 pings is considered dead
const RETRY_MAX = 15000; // ms; backoff ceiling
const OVERLAP = 20; // s; more than the longest storage flush interval (10 s)
const TOKEN_KEY = "smartanom.token";
const CLOSE_UNAUTHORIZED = 4001; // the hub's close code for a missing or wrong token

const state = {
  window: WINDOWS[localStorage.getItem("smartanom.window")] ? localStorage.getItem("smartanom.window") : "1h",
  devices: new Map(), // id -> {card, statusEl, lastEl, lastTs}
  sensors: new Map(), // id -> {deviceId, unit, valueEl, chart}
  token: null, // sent on every request; null when none is known
  locked: false, // the hub refused the token: nothing is loaded until the user gives one
  socket: null,
  socketReady: false, // the hub answered on the socket, so it let us in
  loaded: false, // devices and sensors came from the API
  retries: 0,
  retryTimer: null,
  lastMessage: 0,
  generation: 0, // bumps on every reload, so late answers of an older one are dropped
};

const $ = (selector, root = document) => root.querySelector(selector);

// --- connection ----------------------------------------------------------------

function setConnection(kind, text) {
  const el = $("#connection");
  el.dataset.state = kind;
  el.textContent = text;
  // Without the hub, a device's last known status may be long wrong: say so.
  // A reconnect reloads everything, statuses included.
  if (kind === "reconnecting") for (const id of state.devices.keys()) showStatus(id, "unknown");
}

// "live" means data flows: the API answered and the hub answered on the socket
// (an open socket alone proves nothing with auth on: the hub may still refuse it).
function showConnection() {
  if (state.locked) setConnection("locked", "token needed");
  else if (state.socketReady && state.loaded) setConnection("live", "live");
  else if (state.socketReady) setConnection("connecting", "loading…");
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot set headers on a WebSocket, so the token goes in the URL.
  const query = state.token ? `?${new URLSearchParams({ token: state.token })}` : "";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sensor-data/${query}`);
  state.socket = socket;
  state.socketReady = false;
  socket.onopen = () => {
    // Given up while connecting (the API refused the token); closing it then would log an error.
    if (state.socket !== socket) return socket.close();
    state.lastMessage = Date.now();
    // The hub answers a ping only once it has let us in; with auth on and no or
    // a wrong token it closes with 4001 at once instead of after auth.timeout.
    socket.send(JSON.stringify({ type: "ping" }));
  };
  socket.onmessage = (event) => {
    if (state.socket !== socket) return;
    state.lastMessage = Date.now();
    const message = JSON.parse(event.data);
    if (message.type === "error") return; // an UNAUTHORIZED comes with the 4001 close, handled there
    if (!state.socketReady) {
      state.socketReady = true;
      const wasDown = state.retries > 0;
      state.retries = 0;
      if (wasDown) reload(); // catch up on what happened while away
      showConnection();
    }
    if (message.type === "sensor_data_update") onReading(message);
    else if (message.type === "device_status") onStatus(message);
    else if (message.type === "alert") document.dispatchEvent(new CustomEvent("smartanom:alert", { detail: message })); // alerts.js
    else document.dispatchEvent(new CustomEvent("smartanom:message", { detail: message })); // other extensions: outputs.js
  };
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.socketReady = false;
    if (event.code === CLOSE_UNAUTHORIZED) return needToken(); // retrying with the same token cannot help
    const delay = Math.min(RETRY_MAX, 500 * 2 ** state.retries) * (0.8 + Math.random() * 0.4);
    state.retries += 1;
    setConnection("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s…`);
    state.retryTimer = setTimeout(connect, delay);
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

// Indices of the points that stand alone between gaps (nulls or the chart's ends).
function isolatedPoints(u, seriesIdx) {
  const ys = u.data[seriesIdx];
  const alone = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] != null && (i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) alone.push(i);
  }
  return alone.length ? alone : null;
}

class TokenRefused extends Error {}

async function getJSON(url) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(url, { headers });
  if (response.status === 401) throw new TokenRefused();
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
  state.loaded = false;
  document.dispatchEvent(new Event("smartanom:reload")); // alerts.js loads the alerts too
  try {
    const [{ devices }, { sensors }] = await Promise.all([getJSON("/api/devices"), getJSON("/api/sensors")]);
    if (generation !== state.generation) return;
    render(devices);
    for (const sensor of sensors) {
      if (sensor.latest) showValue(sensor.id, sensor.latest.value);
    }
    showProblem("");
    state.loaded = true;
    rememberToken();
    showConnection();
    await loadHistory(devices.flatMap((d) => d.sensors.map((s) => s.id)), generation);
  } catch (error) {
    if (generation !== state.generation) return;
    if (error instanceof TokenRefused) needToken();
    else showProblem(`Could not load from the hub: ${error.message}`);
  }
}

// --- token (auth on) ------------------------------------------------------------------

// A token in the page's address (`/?token=...`, e.g. a tablet's bookmark) wins over
// the remembered one. It is taken out of the address bar at once, so it is not left
// on screen or passed on with a copied link; once the hub accepts it, it is remembered.
function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("token");
  if (fromUrl === null) return localStorage.getItem(TOKEN_KEY);
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url);
  return fromUrl.trim() || null;
}

function rememberToken() {
  if (state.token) localStorage.setItem(TOKEN_KEY, state.token);
  $("#forget-token").hidden = !state.token;
}

// The hub refused the token (or wants one): stop loading and reconnecting, and ask.
function needToken() {
  if (state.locked) return;
  const refused = state.token;
  state.locked = true;
  state.token = null;
  state.generation++; // late answers for the refused token are dropped
  state.loaded = false;
  clearTimeout(state.retryTimer);
  const socket = state.socket;
  state.socket = null;
  state.socketReady = false;
  if (socket && socket.readyState === WebSocket.OPEN) socket.close(); // a connecting one closes itself in onopen
  if (refused && localStorage.getItem(TOKEN_KEY) === refused) localStorage.removeItem(TOKEN_KEY);
  render([]); // what a refused token showed is no longer ours to show
  showProblem("");
  showConnection();
  $("#forget-token").hidden = true;
  const error = $("#token-error");
  error.hidden = !refused;
  error.textContent = refused ? "The hub did not accept that token. Check it and try again." : "";
  $("#token-form").hidden = false;
  $("#token").focus();
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = $("#token").value.trim();
  if (!token) return;
  $("#token").value = "";
  $("#token-form").hidden = true;
  $("#token-error").hidden = true;
  $("#token-error").textContent = "";
  state.token = token;
  state.locked = false;
  state.retries = 0;
  setConnection("connecting", "connecting…");
  start();
});

$("#forget-token").addEventListener("click", () => {
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
});

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
async function loadHistory(sensorIds, generation) {
  if (!sensorIds.length) return;
  const win = WINDOWS[state.window];
  const now = Date.now();
  const since = new Date(now - win.seconds * 1000).toISOString();
  // One request for every sensor's history (GET /api/readings, docs/api.md).
  const url = `/api/readings?sensors=${sensorIds.join(",")}&`;
  let bucketed = null;
  let raw;
  if (win.bucket) {
    const split = new Date(now - OVERLAP * 1000).toISOString();
    [bucketed, raw] = await Promise.all([
      getJSON(url + new URLSearchParams({ since, until: split, bucket: win.bucket, order: "asc", limit: RAW_LIMIT })),
      getJSON(url + new URLSearchParams({ since: split, order: "asc", limit: RAW_LIMIT })),
    ]);
  } else {
    // Newest first, so a sensor busier than RAW_LIMIT per hour still shows its latest readings.
    raw = await getJSON(url + new URLSearchParams({ since, limit: RAW_LIMIT }));
    for (const page of raw.sensors) page.readings.reverse();
  }
  if (generation !== state.generation) return;
  raw.sensors.forEach((page, i) => {
    const sensor = state.sensors.get(page.sensor_id);
    if (sensor) sensor.chart.setHistory(win, bucketed ? bucketed.sensors[i].buckets : [], page.readings);
  });
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
  device.statusEl.title = status === "unknown" ? "the hub cannot be reached, so the device's status is not known" : "";
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
    return { width: Math.max(200, this.container.clientWidth), height: CHART_HEIGHT };
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
    // A point with a gap on both sides has no line to draw (a sensor read every few hours, on
    // a 30-day chart): draw it as a dot, or the chart looks empty while it has data.
    const points = { show: false, size: 6, fill: stroke, filter: isolatedPoints };
    const series = [{}, { label: bucketed ? "mean" : "value", stroke, width: 1.5, points }];
    const options = {
      ...this.size(),
      series,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: yScale() },
      axes: [{ stroke: "#5f6f66", grid: { stroke: "#eef1ef" }, space: 80 }, yAxis(this.unitLabel)],
    };
    if (bucketed) {
      const faint = "rgba(44,110,155,.35)";
      series.push({ label: "min", stroke: faint, width: 1 }, { label: "max", stroke: faint, width: 1 });
      options.bands = [{ series: [3, 2], fill: "rgba(44,110,155,.12)" }];
    }
    // Other scripts draw on the charts (alerts.js: the good and critical bands).
    options.plugins = (window.smartanomChartPlugins || []).map((make) => make(this.container));
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
    loadHistory([...state.sensors.keys()], generation).catch((error) => {
      if (generation !== state.generation) return;
      if (error instanceof TokenRefused) needToken();
      else showProblem(`Could not load history: ${error.message}`);
    });
  });
}

// --- start ---------------------------------------------------------------------------------

// The socket and the API start together, so no reading falls between loading and listening.
function start() {
  connect();
  reload();
}

showWindowButtons();
state.token = takeToken();
start();
