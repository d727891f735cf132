// An SMTP server in Node.js around the smtpcell protocol component: one
// component instance per connection, accepted mail stored in a Maildir.
//
//   node tests/hosts/node/server.mjs --listen 127.0.0.1:2525 --maildir ./mail \
//       --component target/guest/wasm32-wasip2/guest/smtp_component.wasm
//
// Prints `listening on ADDR` on stdout once it accepts connections (port 0
// picks a free port; ADDR is the real one). Logs go to stderr.

import { createServer } from "node:net";
import { parseArgs } from "node:util";

import { LoadedComponent, guestConfig } from "./lib/component.mjs";
import { serveConnection } from "./lib/connection.mjs";
import { Maildir } from "./lib/maildir.mjs";

const { values: args } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:2525" },
    maildir: { type: "string", default: "./mail" },
    component: { type: "string" },
    hostname: { type: "string", default: "localhost" },
  },
});
if (!args.component) {
  console.error("usage: server.mjs --listen ADDR --maildir DIR --component FILE.wasm [--hostname NAME]");
  process.exit(2);
}

const log = (line) => console.error(`smtpcell-node: ${line}`);
const component = await LoadedComponent.load(args.component);
log(`component loaded: ${component.label} (${component.info.contract})`);
const ctx = {
  component,
  // Same policy as smtpcell's defaults (host/src/server/config.rs).
  guestConfig: guestConfig({ hostname: args.hostname, maxMessageSize: 10_240_000n, maxRecipients: 100, maxLineLength: 1000 }),
  maildir: await Maildir.open(args.maildir, args.hostname),
  hostname: args.hostname,
  log,
};

const server = createServer((socket) => {
  serveConnection(ctx, socket).catch((err) => log(`connection failed: ${err.stack ?? err}`));
});
const { host, port } = parseListen(args.listen);
server.listen(port, host, () => {
  const addr = server.address();
  console.log(`listening on ${addr.family === "IPv6" ? `[${addr.address}]` : addr.address}:${addr.port}`);
});
server.on("error", (err) => {
  log(`cannot listen on ${args.listen}: ${err.message}`);
  process.exit(1);
});

/** `127.0.0.1:2525` or `[::1]:2525`. */
function parseListen(text) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text);
  if (!m) {
    console.error(`--listen wants HOST:PORT or [V6]:PORT, not ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}
