// SmarTanom sensor node: a DS18B20 water temperature probe and an analog pH probe,
// printed over USB serial in the line protocol the SmarTanom Hub's serial_arduino
// plugin reads (docs/serial-arduino.md). Wiring: ../WIRING.md.
//
// Every INTERVAL_MS it prints one line such as
//     water_temperature=21.44,ph=6.82*4D
// The "*4D" is an optional checksum (XOR of the bytes before '*', two hex digits);
// the hub checks it when present, so a line garbled on the cable is dropped
// instead of becoming a wrong reading.
//
// Relays (optional): the hub's serial_relay outputs write "!relay N on" / "!relay N off";
// the sketch switches RELAY_PINS[N-1] and answers "!ok relay N on|off" (or "!err ...").
// The hub writes "!ping" every 5 s while it runs. If nothing arrives for RELAY_TIMEOUT_MS
// (the hub crashed, the cable came out) every relay goes to its safe state (off): a
// pump is never left running by a hub that is gone.
//
// Libraries (Arduino IDE: Sketch > Include Library > Manage Libraries):
//   OneWire by Paul Stoffregen, DallasTemperature by Miles Burton.

#include <OneWire.h>
#include <DallasTemperature.h>

// ---- Settings: match these to your board and to the hub's YAML ----
const long BAUD = 9600;                 // the hub's `baudrate:` must be the same
const unsigned long INTERVAL_MS = 2000; // one line every 2 s; set the device's offline_after to ~10 s
const int ONE_WIRE_PIN = 2;             // DS18B20 data wire
const int PH_PIN = A0;                  // pH amplifier board's analog output (Po)
const float ADC_REFERENCE_V = 5.0;      // 5.0 on an Uno/Nano; 3.3 on 3.3 V boards
const int ADC_STEPS = 1024;             // 10-bit ADC on AVR boards (4096 on an ESP32)

// pH calibration. The probe amplifier gives a voltage that falls as pH rises,
// linearly: pH = 7 + (V_at_pH7 - V) / volts_per_pH.
// Calibrate with buffer solutions: dip the probe in pH 7.00, read the printed
// ph_voltage, put it in PH7_VOLTAGE; then in pH 4.00, and set
// VOLTS_PER_PH = (voltage_at_pH4 - PH7_VOLTAGE) / 3.
const float PH7_VOLTAGE = 2.50;
const float VOLTS_PER_PH = 0.18;
// Print the raw probe voltage too (map `ph_voltage` to no sensor while
// calibrating: the hub then just logs it as an unknown key, which is harmless).
const bool PRINT_PH_VOLTAGE = false;

// Relay outputs. Pins of the relay board's inputs, in the order the hub numbers them (relay: 1 is
// the first). Most relay boards switch on when their input is LOW: then RELAY_ON is LOW.
const int RELAY_PINS[] = {7, 8};
const int RELAY_COUNT = sizeof(RELAY_PINS) / sizeof(RELAY_PINS[0]);
const int RELAY_ON = LOW;
const int RELAY_OFF = HIGH;
const unsigned long RELAY_TIMEOUT_MS = 30000; // silence from the hub longer than this: all relays off

OneWire oneWire(ONE_WIRE_PIN);
DallasTemperature waterTemp(&oneWire);

// Everything printed on the current line goes through here, so the checksum
// covers exactly the bytes the hub receives.
byte lineChecksum = 0;

void emit(const String &text) {
  for (unsigned int i = 0; i < text.length(); i++) {
    lineChecksum ^= (byte)text[i];
  }
  Serial.print(text);
}

void endLine() {
  Serial.print('*');
  if (lineChecksum < 0x10) Serial.print('0');
  Serial.println(lineChecksum, HEX);   // println ends the line with \r\n; the hub accepts it
  lineChecksum = 0;
}

float readPhVoltage() {
  // Average a few samples: the pH amplifier output is noisy.
  long sum = 0;
  for (int i = 0; i < 10; i++) {
    sum += analogRead(PH_PIN);
    delay(10);
  }
  return (sum / 10.0) * ADC_REFERENCE_V / ADC_STEPS;
}

// ---- Relays: commands from the hub, and the watchdog ----
char command[32];
int commandLength = 0;
unsigned long lastHeardMs = 0;
bool relaysSafe = true;

void allRelaysOff() {
  for (int i = 0; i < RELAY_COUNT; i++) digitalWrite(RELAY_PINS[i], RELAY_OFF);
  relaysSafe = true;
}

void handleCommand(const char *text) {
  lastHeardMs = millis();
  if (strcmp(text, "!ping") == 0) return;
  int relay = 0;
  char state[4] = "";
  if (sscanf(text, "!relay %d %3s", &relay, state) != 2 || relay < 1 || relay > RELAY_COUNT ||
      (strcmp(state, "on") != 0 && strcmp(state, "off") != 0)) {
    Serial.print(F("!err "));
    Serial.println(text);
    return;
  }
  bool on = strcmp(state, "on") == 0;
  digitalWrite(RELAY_PINS[relay - 1], on ? RELAY_ON : RELAY_OFF);
  if (on) relaysSafe = false;
  Serial.print(F("!ok relay "));
  Serial.print(relay);
  Serial.println(on ? F(" on") : F(" off"));
}

void readCommands() {
  while (Serial.available() > 0) {
    char c = Serial.read();
    if (c == '\r') continue;
    if (c == '\n') {
      command[commandLength] = '\0';
      if (commandLength > 0) handleCommand(command);
      commandLength = 0;
    } else if (commandLength < (int)sizeof(command) - 1) {
      command[commandLength++] = c;
    }
  }
  if (!relaysSafe && millis() - lastHeardMs > RELAY_TIMEOUT_MS) {
    allRelaysOff();
    Serial.println(F("# relays off: nothing heard from the hub"));
  }
}

void setup() {
  // Relays off before anything else, so a reset never switches a pump on.
  for (int i = 0; i < RELAY_COUNT; i++) {
    digitalWrite(RELAY_PINS[i], RELAY_OFF);
    pinMode(RELAY_PINS[i], OUTPUT);
  }
  Serial.begin(BAUD);
  waterTemp.begin();
  // Do not block 750 ms per conversion: relay commands must be answered quickly.
  waterTemp.setWaitForConversion(false);
  waterTemp.requestTemperatures();
  // Lines starting with '#' are comments to the hub: a banner after reset is fine.
  Serial.println(F("# SmarTanom node ready: water_temperature (DS18B20), ph (analog)"));
}

unsigned long lastSampleMs = 0;

void loop() {
  readCommands();
  if (millis() - lastSampleMs < INTERVAL_MS) return;  // no delay(): commands keep flowing
  lastSampleMs = millis();
  float celsius = waterTemp.getTempCByIndex(0);     // the conversion started INTERVAL_MS ago
  waterTemp.requestTemperatures();                  // the next one, done by the next sample
  float voltage = readPhVoltage();
  float ph = 7.0 + (PH7_VOLTAGE - voltage) / VOLTS_PER_PH;

  bool first = true;
  // A disconnected DS18B20 reads -127: leave the key out rather than send a false value.
  if (celsius != DEVICE_DISCONNECTED_C) {
    emit("water_temperature=" + String(celsius, 2));
    first = false;
  }
  if (ph > 0.0 && ph < 14.0) {                     // outside 0..14 means no probe or bad calibration
    emit(String(first ? "" : ",") + "ph=" + String(ph, 2));
    first = false;
  }
  if (PRINT_PH_VOLTAGE) {
    emit(String(first ? "" : ",") + "ph_voltage=" + String(voltage, 3));
    first = false;
  }
  if (!first) {
    endLine();
  } else {
    lineChecksum = 0;
    Serial.println(F("# no sensor answered"));
  }
}
