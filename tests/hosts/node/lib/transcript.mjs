// Parser for the transcript files in tests/transcripts. The format and the
// way a driver runs a file are specified in tests/transcripts/README.md; this
// mirrors tests/harness/transcript.rs so that every host reads the corpus the
// same way.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const DEFAULT_CONFIG = Object.freeze({
  hostname: "smtpcell.test",
  maxMessageSize: 10_240_000n,
  maxRecipients: 100,
  maxLineLength: 1000,
  // smtp_core::Config::DEFAULT_MAX_AUTH_FAILURES; 0 is no limit.
  maxAuthFailures: 3,
  disabled: Object.freeze([]),
  peerIp: "192.0.2.1",
  ask: Object.freeze([]),
  auth: Object.freeze([]),
  authWithoutTls: false,
  requireTls: false,
  starttls: false,
});

/** Extension names a transcript may disable (README.md, `disable`). */
const EXTENSION_NAMES = Object.freeze([
  "pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8", "chunking", "binarymime", "dsn", "help",
]);

/** Steps a transcript may `ask` about (wit/session.wit `questions`). */
const ASKABLE = Object.freeze(["connect", "helo", "mail", "rcpt"]);
/** SASL mechanisms a transcript may offer with `auth` (wit/session.wit `auth-mechanisms`). */
const MECHANISMS = Object.freeze(["plain", "login"]);
/** Every question an `A:` line may name: the askable steps plus the two always asked. */
const QUESTIONS = Object.freeze([...ASKABLE, "auth", "message-end"]);
/** The WIT names of `reason`, as `A: … refuse REASON` spells them. */
const REASONS = Object.freeze([
  "relay-denied", "no-such-user", "mailbox-full", "sender-refused", "policy", "greylisted",
  "rate-limited", "auth-failed", "auth-required", "encryption-required", "storage-full", "local-error",
]);
const CRLF = Buffer.from("\r\n");

/**
 * @typedef {{question: string, decision: import("./component.mjs").Decision}} Answer
 * @typedef {{after: number, tls: {version: string, cipher: string}, line: number}} Handshake
 *   a `T:` line: `after` counts the `C` lines before it (0: implicit TLS, before the greeting)
 * @typedef {{name: string, config: typeof DEFAULT_CONFIG, client: Buffer[], handshakes: Handshake[],
 *            expected: Buffer, answers: Answer[], messages: Buffer[]}} Transcript
 */

/** Parses one transcript; throws with `name:line` on malformed input. */
export function parseTranscript(name, text) {
  const t = {
    name, config: { ...DEFAULT_CONFIG }, client: [], handshakes: [], expected: [], answers: [], messages: [],
  };
  let seenExchange = false;
  // Split on LF and drop one trailing CR, as Rust's str::lines does.
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  lines.forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const at = `${name}:${index + 1}`;
    try {
      if (line.trim() === "" || line.startsWith("#")) return;
      if (line.startsWith("! ")) {
        if (seenExchange) throw new Error("configuration after the first C/S line");
        setConfig(t.config, line.slice(2));
        return;
      }
      if (!(line.length === 2 || line[2] === " ")) throw new Error("expected a two-character tag and a space");
      const tag = line.slice(0, 2);
      const rest = line.slice(3);
      switch (tag) {
        case "C:": seenExchange = true; t.client.push(Buffer.concat([Buffer.from(rest), CRLF])); break;
        case "C=": seenExchange = true; t.client.push(unescape(rest)); break;
        case "S:": seenExchange = true; t.expected.push(Buffer.from(rest), CRLF); break;
        case "T:": seenExchange = true; t.handshakes.push(parseHandshake(t, rest, index + 1)); break;
        case "A:": t.answers.push(parseAnswer(rest)); break;
        case "M=": t.messages.push(unescape(rest)); break;
        default: throw new Error(`unknown tag ${JSON.stringify(tag)}`);
      }
    } catch (err) {
      throw new Error(`${at}: ${err.message}`);
    }
  });
  t.expected = Buffer.concat(t.expected);
  return t;
}

/** Every `*.txt` file of a directory, parsed, sorted by name. */
export function loadCorpus(dir) {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".txt"))
    .sort()
    .map((f) => parseTranscript(f, readFileSync(join(dir, f), "utf8")));
}

/** The implicit TLS handshake (a `T:` line before the first `C` line), or undefined. */
export function implicitTls(t) {
  return t.handshakes[0]?.after === 0 ? t.handshakes[0] : undefined;
}

/** The STARTTLS handshakes: the `T:` lines after some client input. */
export function starttlsHandshakes(t) {
  return t.handshakes.filter((h) => h.after > 0);
}

/**
 * The client lines cut into segments at the STARTTLS handshakes (a client
 * sends nothing between its STARTTLS and the end of the handshake).
 * @returns {Buffer[][]}
 */
export function segments(t) {
  const out = [];
  let from = 0;
  for (const h of starttlsHandshakes(t)) {
    out.push(t.client.slice(from, h.after));
    from = h.after;
  }
  out.push(t.client.slice(from));
  return out;
}

/**
 * The ways the input is split into feed calls, each as the feed inputs of
 * every segment; each must give the same outcome. Splits stay within a
 * segment.
 * @returns {[string, Buffer[][]][]}
 */
export function feedPlans(t) {
  const lines = segments(t);
  const inputs = lines.map((l) => Buffer.concat(l));
  return [
    ["per-line", lines],
    ["all-at-once", inputs.map((input) => (input.length ? [input] : []))],
    ["byte-by-byte", inputs.map((input) => [...input].map((b) => Buffer.from([b])))],
  ];
}

function setConfig(config, assignment) {
  const eq = assignment.indexOf("=");
  if (eq < 0) throw new Error("expected `key = value`");
  const key = assignment.slice(0, eq).trim();
  const value = assignment.slice(eq + 1).trim();
  switch (key) {
    case "hostname": config.hostname = value; break;
    case "max-message-size": config.maxMessageSize = BigInt(integer(value)); break;
    case "max-recipients": config.maxRecipients = Number(integer(value)); break;
    case "max-line-length": config.maxLineLength = Number(integer(value)); break;
    case "max-auth-failures": config.maxAuthFailures = Number(integer(value)); break;
    case "disable": config.disabled = names(value, EXTENSION_NAMES, "extension", key); break;
    case "peer-ip": config.peerIp = value; break;
    case "ask": config.ask = names(value, ASKABLE, "step", key); break;
    case "auth": config.auth = names(value, MECHANISMS, "mechanism", key); break;
    case "auth-without-tls": config.authWithoutTls = yesNo(key, value); break;
    case "require-tls": config.requireTls = yesNo(key, value); break;
    case "starttls": config.starttls = yesNo(key, value); break;
    default: throw new Error(`unknown configuration key ${JSON.stringify(key)}`);
  }
}

/**
 * `T: VERSION CIPHER`, two words, as host/src/transcript/parse.rs reads it.
 * @returns {Handshake}
 */
function parseHandshake(t, text, line) {
  const after = t.client.length;
  if (t.handshakes.at(-1)?.after === after) throw new Error("a second TLS handshake with no client line since the first");
  const words = text.split(" ");
  if (words.length !== 2 || words.some((w) => w === "")) throw new Error("expected `T: VERSION CIPHER`, two words");
  return { after, tls: { version: words[0], cipher: words[1] }, line };
}

/** `yes` or `no` as a boolean. */
function yesNo(key, value) {
  if (value !== "yes" && value !== "no") {
    throw new Error(`\`${key}\` wants yes or no, not ${JSON.stringify(value)}`);
  }
  return value === "yes";
}

/** A comma list of names, each one of `known` (empty entries are skipped). */
function names(value, known, what, key) {
  const list = value.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  // A typo would otherwise silently test the default configuration.
  const unknown = list.filter((name) => !known.includes(name));
  if (unknown.length) throw new Error(`unknown ${what} ${JSON.stringify(unknown[0])} in \`${key}\``);
  return list;
}

function integer(text) {
  if (!/^[0-9]+$/.test(text)) throw new Error(`not a number: ${JSON.stringify(text)}`);
  return text;
}

/**
 * `QUESTION accept [TEXT]` or `QUESTION refuse REASON
 * permanent|temporary|disconnect [TEXT]`, words split at single spaces and TEXT the rest of the line as is
 * (a refusal's text may hold spaces), as host/src/transcript/parse.rs reads it.
 * @returns {Answer}
 */
function parseAnswer(line) {
  const [question, verb, rest] = splitn(line, 3);
  if (!QUESTIONS.includes(question)) throw new Error(`unknown question ${JSON.stringify(question)}`);
  if (verb === "accept") return { question, decision: { tag: "accept", val: rest } };
  if (verb !== "refuse" || rest === undefined) {
    throw new Error(
      "expected `accept [text]` or `refuse reason permanent|temporary|disconnect [text]` after the question",
    );
  }
  const [reason, duration, text] = splitn(rest, 3);
  if (!REASONS.includes(reason)) throw new Error(`unknown refusal reason ${JSON.stringify(reason)}`);
  if (!["permanent", "temporary", "disconnect"].includes(duration)) {
    throw new Error(`expected permanent, temporary or disconnect, not ${JSON.stringify(duration)}`);
  }
  const refusal = { reason, permanent: duration === "permanent", text, disconnect: duration === "disconnect" };
  return { question, decision: { tag: "refuse", val: refusal } };
}

/** `text` split at its first `n - 1` spaces (fewer parts when it has fewer); the last part keeps the rest. */
function splitn(text, n) {
  const parts = [];
  let rest = text;
  for (let at = rest.indexOf(" "); at >= 0 && parts.length < n - 1; at = rest.indexOf(" ")) {
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

/** Decodes `\r \n \t \0 \\ \xHH`; every other byte is taken literally. */
function unescape(text) {
  const src = Buffer.from(text);
  const out = [];
  for (let i = 0; i < src.length; i++) {
    if (src[i] !== 0x5c) { out.push(src[i]); continue; }
    const e = String.fromCharCode(src[++i] ?? 0x20);
    const simple = { r: 13, n: 10, t: 9, 0: 0, "\\": 0x5c }[e];
    if (simple !== undefined) { out.push(simple); continue; }
    if (e !== "x") throw new Error(`unknown escape \\${e}`);
    const hex = src.subarray(i + 1, i + 3).toString("latin1");
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error("\\x needs two hex digits");
    out.push(parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(out);
}
