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

void setup() {
  Serial.begin(BAUD);
  waterTemp.begin();
  // Lines starting with '#' are comments to the hub: a banner after reset is fine.
  Serial.println(F("# SmarTanom node ready: water_temperature (DS18B20), ph (analog)"));
}

void loop() {
  waterTemp.requestTemperatures();                 // takes up to 750 ms at 12-bit resolution
  float celsius = waterTemp.getTempCByIndex(0);
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
  delay(INTERVAL_MS);
}
