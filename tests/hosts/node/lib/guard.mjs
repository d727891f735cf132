// The host never trusts what a guest returns: every call's actions are
// checked against the contract before any of them touches the socket or the
// disk. A violation is a guest fault, handled exactly like a trap (421 and
// close). The rules are those of smtp-core's one ordering checker
// (guest/core/src/contract.rs), plus what this host in particular rules out
// (start-tls when it offers no TLS: the server never does, the transcript
// runner does for `! starttls = yes`) and what it writes into headers
// (envelope fields).

/**
 * The contract's reply bound (wit/session.wit, `session`): the `send` octets
 * of one call are at most 64 per octet of input the call processes, plus
 * 4096 (smtp_core::max_reply_octets).
 */
const REPLY_OCTETS_PER_INPUT_OCTET = 64;
const REPLY_OCTETS_PER_CALL = 4096;
/** Longest envelope string: the longest command line (smtp_core::LONGEST_COMMAND_LINE). */
const MAX_FIELD = 1180;

/** Anything the guest did that ends its connection: a trap or a contract violation. */
export class GuestFault extends Error {
  name = "GuestFault";
}

/** Tracks the session state the actions imply. */
export class ActionGuard {
  /** Between `message-begin` and `ask(message-end)` / `message-abort`. */
  #open = false;
  #size = 0n;
  #maxSize;
  #maxRecipients;
  /** A question waits for its answer. */
  #asking = false;
  #closed = false;
  /** Input of the `feed` that asked the pending question: the most the `answer` calls after it may process. */
  #inputBehindQuestion = 0;
  /** The host offered STARTTLS or implicit TLS, so `start-tls` and `tls-started` have a meaning. */
  #tls;
  /** `start-tls` was returned and `tls-started` not yet called. */
  #awaitingTls = false;
  /** No call was checked yet: `tls-started` now is implicit TLS. */
  #first = true;

  /** `tls`: the host can complete TLS handshakes (see `#tls`). */
  constructor(maxSize, maxRecipients, { tls = false } = {}) {
    this.#maxSize = BigInt(maxSize);
    this.#maxRecipients = maxRecipients;
    this.#tls = tls;
  }

  /** Whether the client is sending message content (the span of the data timeout). */
  get inMessage() {
    return this.#open;
  }

  /**
   * Checks that the host may make `call` now, then one call's whole list
   * before any of it is executed. `call` is `{ feed: octets }` for `feed`,
   * `"answer"` for `answer`, `"tls-started"` for `tls-started`, and
   * absent for the calls without input (greeting, timeout).
   */
  check(actions, call) {
    // The host's own side of the question and TLS rules: breaking them is
    // a bug here, not the guest's fault.
    if (this.#closed) throw new Error("a call after close");
    if (call?.feed !== undefined && this.#asking) throw new Error("feed while a question is pending");
    if (call?.feed !== undefined && this.#awaitingTls) throw new Error("feed before tls-started");
    if (call === "answer" && !this.#asking) throw new Error("an answer without a question");
    if (call === "tls-started") {
      if (!this.#tls) throw new Error("tls-started, but this host offers no TLS");
      if (!this.#awaitingTls && !this.#first) throw new Error("tls-started without start-tls");
      this.#awaitingTls = false;
    } else {
      // An answer settles the question; timeout drops it (wit/session.wit).
      // tls-started leaves it pending.
      this.#asking = false;
    }
    this.#first = false;

    const input = call === "answer" ? this.#inputBehindQuestion : (call?.feed ?? 0);
    const bound = input * REPLY_OCTETS_PER_INPUT_OCTET + REPLY_OCTETS_PER_CALL;
    let sent = 0;
    let ended = false;
    for (const action of actions) {
      if (ended) violation("actions after ask, start-tls or close");
      switch (action.tag) {
        case "send":
          sent += action.val.length;
          if (sent > bound) violation(`${sent} octets of replies in one call, more than the ${bound} its input allows`);
          break;
        case "ask": {
          const messageEnd = action.val?.tag === "message-end";
          if (messageEnd !== this.#open) {
            violation(messageEnd ? "ask(message-end) without message-begin" : "a question inside an open message");
          }
          this.#open = false;
          this.#asking = true;
          if (call?.feed !== undefined) this.#inputBehindQuestion = call.feed;
          ended = true;
          break;
        }
        case "message-begin":
          if (this.#open) violation("message-begin inside an open message");
          checkEnvelope(action.val, this.#maxRecipients);
          this.#open = true;
          this.#size = 0n;
          break;
        case "message-data":
          if (!this.#open) violation("message-data without message-begin");
          this.#size += BigInt(action.val.length);
          if (this.#size > this.#maxSize) violation("message-data beyond the configured size limit");
          break;
        case "message-abort":
          if (!this.#open) violation("message-abort without message-begin");
          this.#open = false;
          break;
        case "start-tls":
          if (!this.#tls) violation("start-tls, but the host offered no TLS");
          if (this.#open) violation("start-tls inside an open message");
          this.#awaitingTls = true;
          ended = true;
          break;
        case "close":
          if (this.#open) violation("close with a message open (it is aborted first)");
          this.#closed = true;
          ended = true;
          break;
        default:
          violation(`unknown action ${JSON.stringify(action.tag)}`);
      }
    }
  }
}

function violation(what) {
  throw new GuestFault(`contract violation: ${what}`);
}

function checkEnvelope(e, maxRecipients) {
  if (e.recipients.length === 0 || e.recipients.length > maxRecipients) {
    violation("message-begin with no recipients or more than the limit");
  }
  const fields = [e.helo, e.reversePath, e.protocol, e.dsnEnvid, e.tls?.version, e.tls?.cipher, e.authenticated];
  for (const r of e.recipients) fields.push(r.address, r.notify, r.orcpt);
  for (const field of fields) {
    if (field == null) continue; // an absent option
    // Length in octets, as the header writer will emit them.
    if (Buffer.byteLength(field) > MAX_FIELD || /[\r\n\0]/.test(field)) {
      violation("envelope field with CR, LF, NUL or longer than any command line");
    }
  }
  if (e.helo === "" || !/^[A-Za-z0-9]+$/.test(e.protocol)) {
    violation("envelope without HELO name or with a malformed protocol name");
  }
}
