// Subscribe over MQTT over WebSocket with the `mqtt` npm package; print what arrives.
//
//   node ws_subscribe.mjs --url ws://127.0.0.1:8000/mqtt --topic devices/d1/config \
//       [--username AKIR... --password SECRET] [--protocol-version 4|5] [--timeout 10]
//
// Prints one JSON line per received message ({"topic", "payload", "retain", "qos"}) and exits 0
// after the first one; exits 1 on any error, a refused subscription, or the timeout.
import { parseArgs } from "node:util";
import mqtt from "mqtt";

const { values: options } = parseArgs({
  options: {
    url: { type: "string" },
    topic: { type: "string" },
    username: { type: "string" },
    password: { type: "string" },
    "protocol-version": { type: "string", default: "4" },
    timeout: { type: "string", default: "10" },
  },
});
if (!options.url || !options.topic) {
  console.error("usage: node ws_subscribe.mjs --url ws://HOST:PORT/mqtt --topic TOPIC [...]");
  process.exit(2);
}
const timeoutMs = Number(options.timeout) * 1000;

let finished = false;
const client = mqtt.connect(options.url, {
  username: options.username,
  password: options.password,
  protocolVersion: Number(options["protocol-version"]),
  clientId: `node-ws-${Math.random().toString(16).slice(2, 10)}`,
  clean: true,
  reconnectPeriod: 0, // a refused or dropped connection is a failure, not a retry
  connectTimeout: timeoutMs,
});

function finish(code, message) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  if (message) console.error(`ws_subscribe: ${message}`);
  client.end(code !== 0, () => process.exit(code));
}

const timer = setTimeout(() => finish(1, `nothing received within ${options.timeout} s`), timeoutMs);

client.on("connect", () => {
  client.subscribe(options.topic, { qos: 1 }, (error, granted) => {
    if (error) return finish(1, `subscribe failed: ${error.message}`);
    const refused = granted.find((grant) => grant.qos >= 0x80);
    if (refused) finish(1, `subscription to ${refused.topic} refused (0x${refused.qos.toString(16)})`);
  });
});

client.on("message", (topic, payload, packet) => {
  if (finished) return;
  const line = { topic, payload: payload.toString("utf8"), retain: packet.retain, qos: packet.qos };
  console.log(JSON.stringify(line));
  finish(0);
});

client.on("error", (error) => finish(1, error.message));
client.on("close", () => finish(1, "connection closed"));
