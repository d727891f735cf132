// The host never trusts what a guest returns: every call's actions are
// checked against the contract before any of them touches the socket or the
// disk. A violation is a guest fault, handled exactly like a trap (421 and
// close). The rules are those of host/src/server/guard.rs.

/**
 * The contract's reply bound (wit/session.wit, `feed` and `complete`): the
 * `send` octets of one call are at most 64 per octet of input the call
 * processes, plus 4096 (smtp_core::max_reply_octets).
 */
const REPLY_OCTETS_PER_INPUT_OCTET = 64;
const REPLY_OCTETS_PER_CALL = 4096;
/** Longest envelope string: the longest command line (smtp_core::LONGEST_COMMAND_LINE). */
const MAX_FIELD = 1048;

/** Anything the guest did that ends its connection: a trap or a contract violation. */
export class GuestFault extends Error {
  name = "GuestFault";
}

/** Tracks the transaction state the actions imply. */
export class ActionGuard {
  #open = false;
  #size = 0n;
  #maxSize;
  #maxRecipients;
  /** Input of the `feed` whose actions ended with `message-end`: what `complete` processes. */
  #inputBehindMessage = 0;

  constructor(maxSize, maxRecipients) {
    this.#maxSize = BigInt(maxSize);
    this.#maxRecipients = maxRecipients;
  }

  get inMessage() {
    return this.#open;
  }

  /**
   * Checks one call's whole list before any of it is executed. `call` is
   * `{ feed: octets }` for `feed`, `"complete"` for `complete`, and absent
   * for the calls without input.
   */
  check(actions, call) {
    const input = call === "complete" ? this.#inputBehindMessage : (call?.feed ?? 0);
    const bound = input * REPLY_OCTETS_PER_INPUT_OCTET + REPLY_OCTETS_PER_CALL;
    let sent = 0;
    actions.forEach((action, i) => {
      const last = i + 1 === actions.length;
      switch (action.tag) {
        case "send":
          sent += action.val.length;
          if (sent > bound) violation(`${sent} octets of replies in one call, more than the ${bound} its input allows`);
          break;
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
        case "message-end":
          if (!this.#open) violation("message-end without message-begin");
          if (!last) violation("actions after message-end (they must wait for the verdict)");
          this.#open = false;
          if (call?.feed !== undefined) this.#inputBehindMessage = call.feed;
          break;
        case "message-abort":
          if (!this.#open) violation("message-abort without message-begin");
          this.#open = false;
          break;
        case "start-tls":
          violation("start-tls, but the host offered no TLS");
          break;
        case "close":
          if (!last) violation("actions after close");
          break;
        default:
          violation(`unknown action ${JSON.stringify(action.tag)}`);
      }
    });
  }
}

function violation(what) {
  throw new GuestFault(`contract violation: ${what}`);
}

function checkEnvelope(e, maxRecipients) {
  if (e.recipients.length === 0 || e.recipients.length > maxRecipients) {
    violation("message-begin with no recipients or more than the limit");
  }
  const fields = [e.helo, e.reversePath, e.protocol, e.dsnEnvid];
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
