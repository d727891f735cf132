// Loads the protocol component into Node: transpiles it with jco (once per
// distinct .wasm, cached under build/), compiles its core modules once, and
// creates one fresh instance per session, as the contract asks: a trap or a
// misbehaving guest can only ever take its own connection down.

import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { transpile } from "@bytecodealliance/jco";

import { GuestFault } from "./guard.mjs";
import { wasiImports } from "./wasi.mjs";

const BUILD_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "build");
const NAME = "smtp_component";
const RECEIVER = "smtp:session/receiver@3.0.0";

/**
 * Transpiles `wasmPath` unless an identical .wasm was transpiled before, and
 * returns the folder holding the JS bindings and core modules. Concurrent
 * callers (tests run hosts in parallel) each write a private folder and
 * rename it into place; the loser of the race discards its copy.
 */
export async function transpileCached(wasmPath) {
  const bytes = readFileSync(wasmPath);
  const digest = createHash("sha256").update(bytes).digest("hex").slice(0, 24);
  const dir = join(BUILD_DIR, digest);
  if (existsSync(join(dir, `${NAME}.js`))) return dir;
  // --instantiation async: the module exports instantiate() instead of
  // instantiating itself on import, which is what gives one instance per
  // session.
  const { files } = await transpile(bytes, { name: NAME, instantiation: "async", emitTypescriptDeclarations: false });
  const staging = `${dir}.tmp-${process.pid}-${Date.now()}`;
  mkdirSync(staging, { recursive: true });
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(dirname(join(staging, file)), { recursive: true });
    writeFileSync(join(staging, file), content);
  }
  try {
    renameSync(staging, dir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(join(dir, `${NAME}.js`))) throw err;
  }
  return dir;
}

/** A transpiled component whose core modules are compiled, ready to instantiate. */
export class LoadedComponent {
  #instantiate;
  #getCoreModule;
  /** The component's own `info()`: name, version, contract, capabilities. */
  info;

  constructor(instantiate, getCoreModule) {
    this.#instantiate = instantiate;
    this.#getCoreModule = getCoreModule;
  }

  static async load(wasmPath) {
    const dir = await transpileCached(wasmPath);
    const { instantiate } = await import(pathToFileURL(join(dir, `${NAME}.js`)).href);
    // Compiling is the expensive part; instances share the compiled modules.
    const compiled = new Map();
    const getCoreModule = (file) => {
      if (!compiled.has(file)) compiled.set(file, WebAssembly.compile(readFileSync(join(dir, file))));
      return compiled.get(file);
    };
    const component = new LoadedComponent(instantiate, getCoreModule);
    // A throw-away instance answers who the component is.
    component.info = (await component.receiver()).info();
    return component;
  }

  /** `name@version`, for logs and trace headers. */
  get label() {
    return `${this.info.name}@${this.info.version}`;
  }

  /** The exported `receiver` interface of a brand-new instance. */
  async receiver() {
    let exports;
    try {
      exports = await this.#instantiate(this.#getCoreModule, wasiImports);
    } catch (err) {
      throw new GuestFault(`cannot instantiate the component (an import lib/wasi.mjs does not grant?): ${err.message}`);
    }
    const receiver = exports[RECEIVER] ?? exports.receiver;
    if (!receiver?.Session) throw new Error(`the component does not export ${RECEIVER}`);
    return receiver;
  }
}

/**
 * The guest-side configuration record. `disabled` lists transcript names of
 * extensions, `ask` the steps to ask about, `auth` the SASL mechanisms to
 * offer (none by default: the host asks nothing but the end of a message).
 * `starttls` is only for the transcript runner, which stands in for the
 * handshake; the server cannot upgrade the stream and leaves it off.
 * `maxAuthFailures` defaults to the core's 3 (0: no limit).
 */
export function guestConfig({
  hostname, maxMessageSize, maxRecipients, maxLineLength, disabled = [], ask = [], auth = [], authWithoutTls = false,
  requireTls = false, starttls = false, maxAuthFailures = 3,
}) {
  const on = (name) => !disabled.includes(name);
  return {
    hostname,
    maxMessageSize: BigInt(maxMessageSize),
    maxRecipients,
    maxLineLength,
    extensions: {
      pipelining: on("pipelining"),
      size: on("size"),
      eightbitmime: on("8bitmime"),
      enhancedstatuscodes: on("enhancedstatuscodes"),
      smtputf8: on("smtputf8"),
      chunking: on("chunking"),
      binarymime: on("binarymime"),
      dsn: on("dsn"),
      help: on("help"),
      starttls,
    },
    questions: {
      connect: ask.includes("connect"),
      helo: ask.includes("helo"),
      mail: ask.includes("mail"),
      rcpt: ask.includes("rcpt"),
    },
    authMechanisms: { plain: auth.includes("plain"), login: auth.includes("login") },
    authWithoutTls,
    requireTls,
    maxAuthFailures,
  };
}

/**
 * @typedef {{tag: "accept", val?: string}
 *         | {tag: "refuse", val: {reason: string, permanent: boolean, text?: string, disconnect: boolean}}} Decision
 *   the WIT `answer` as jco lowers it (an absent `val` or `text` is `none`)
 */

/**
 * One session in its own instance. Every call returns the guest's actions;
 * any exception from inside the guest (a trap, a value jco cannot lift)
 * becomes a GuestFault, after which the instance must not be used again.
 */
export class GuestSession {
  #session;
  #poisoned = false;

  constructor(session) {
    this.#session = session;
  }

  static async start(component, config, peer) {
    const receiver = await component.receiver();
    return new GuestSession(guard(() => new receiver.Session(config, peer)));
  }

  greeting() { return this.#call((s) => s.greeting()); }
  feed(bytes) { return this.#call((s) => s.feed(bytes)); }
  /** @param {Decision} decision on the pending question */
  answer(decision) { return this.#call((s) => s.answer(decision)); }
  /** @param {{version: string, cipher: string}} tls the session the handshake established */
  tlsStarted(tls) { return this.#call((s) => s.tlsStarted(tls)); }
  timeout() { return this.#call((s) => s.timeout()); }

  #call(f) {
    if (this.#poisoned) throw new GuestFault("the instance already faulted");
    try {
      return guard(() => f(this.#session));
    } catch (err) {
      this.#poisoned = true;
      throw err;
    }
  }
}

function guard(f) {
  try {
    return f();
  } catch (err) {
    if (err instanceof GuestFault) throw err;
    throw new GuestFault(`guest trapped: ${err?.message ?? err}`, { cause: err });
  }
}
