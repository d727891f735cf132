// Drives one client connection the way host/src/server/connection.rs does:
// each read goes to the guest in one `feed` call, the guest's actions are
// checked by the ActionGuard and executed in order, and every question is
// answered by this host's policy: accept everything, and accept a message
// only once it is durable (commit, then `answer` with the queue id).

import { GuestSession } from "./component.mjs";
import { ActionGuard, GuestFault } from "./guard.mjs";
import { isStorageFull } from "./maildir.mjs";
import { SocketReader, TIMED_OUT } from "./reader.mjs";

/** Waiting for a command (RFC 5321 section 4.5.3.2: 5 minutes). */
const COMMAND_TIMEOUT_MS = 300_000;
/** Waiting for the next block of message content (RFC 5321: 3 minutes). */
const DATA_TIMEOUT_MS = 180_000;

/**
 * @param ctx {{component, guestConfig, maildir, hostname, log}}
 */
export async function serveConnection(ctx, socket) {
  const peer = { ip: canonicalIp(socket.remoteAddress), port: socket.remotePort };
  const conn = new Connection(ctx, socket, peer);
  try {
    await conn.drive();
  } catch (err) {
    if (err instanceof GuestFault) {
      ctx.log(`${peer.ip}:${peer.port} guest fault, ending this connection: ${err.message}`);
      // The one reply the host writes itself: the guest that would have
      // written it is gone.
      const reply = `421 4.3.0 ${ctx.hostname} Service unavailable, closing connection\r\n`;
      await writeAll(socket, Buffer.from(reply)).catch(() => {});
    } else {
      ctx.log(`${peer.ip}:${peer.port} client connection ended: ${err.message}`);
    }
  } finally {
    // Whatever did not reach commit must not stay in tmp/.
    await conn.discardPending();
    socket.end(() => socket.destroy());
  }
}

class Connection {
  #ctx;
  #socket;
  #peer;
  /** `{txn}` while a message is being stored, `{error}` once storage failed. */
  #pending = null;

  constructor(ctx, socket, peer) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#peer = peer;
  }

  async drive() {
    const { component, guestConfig } = this.#ctx;
    // First: from now on socket errors are the reader's, not an unhandled
    // 'error' event that would end the whole process.
    const reader = new SocketReader(this.#socket);
    const session = await GuestSession.start(component, guestConfig, this.#peer);
    const guard = new ActionGuard(guestConfig.maxMessageSize, guestConfig.maxRecipients);
    let out = [];
    let actions = session.greeting();
    let call; // what produced `actions`: see ActionGuard.check
    for (;;) {
      guard.check(actions, call);
      let question = null;
      let close = false;
      for (const action of actions) {
        switch (action.tag) {
          case "send": out.push(action.val); break;
          case "message-begin": await this.#open(action.val); break;
          case "message-data": await this.#write(action.val); break;
          case "message-abort": await this.discardPending(); break;
          case "ask": question = action.val; break;
          case "close": close = true; break;
        }
      }
      // Replies go out before a decision (storing a message takes fsyncs)
      // and before the next read, so at most one call's replies are held.
      if (out.length) {
        await writeAll(this.#socket, Buffer.concat(out));
        out = [];
      }
      if (question) {
        actions = session.answer(await this.#decide(question));
        call = "answer";
        continue;
      }
      if (close) return;
      const chunk = await reader.read(guard.inMessage ? DATA_TIMEOUT_MS : COMMAND_TIMEOUT_MS);
      call = undefined;
      if (chunk === TIMED_OUT) {
        actions = session.timeout();
      } else if (chunk === null) {
        if (this.#pending) this.#ctx.log("client disconnected in the middle of a message; nothing stored");
        return;
      } else {
        actions = session.feed(chunk);
        call = { feed: chunk.length };
      }
    }
  }

  /**
   * This host's policy, which accepts everything. Its configuration asks
   * about no step and offers no AUTH, so only `message-end` comes; any other
   * question gets a plain accept.
   */
  async #decide(question) {
    if (question.tag === "message-end") return this.#commit();
    return { tag: "accept" };
  }

  async #open(envelope) {
    const meta = {
      serverHostname: this.#ctx.hostname,
      clientIp: this.#peer.ip,
      handledBy: this.#ctx.component.label,
      receivedAt: new Date(),
    };
    try {
      this.#pending = { txn: await this.#ctx.maildir.begin(envelope, meta) };
    } catch (error) {
      this.#ctx.log(`cannot open storage for a message: ${error.message}`);
      this.#pending = { error };
    }
  }

  async #write(bytes) {
    const txn = this.#pending?.txn;
    if (!txn) return; // storage already failed: the client hears 451/452 at the end
    try {
      await txn.write(bytes);
    } catch (error) {
      this.#ctx.log(`cannot write message content: ${error.message}`);
      this.#pending = { error }; // write() removed the partial file
    }
  }

  /**
   * Makes the message durable and turns the outcome into the answer to
   * `message-end`: accept with the queue id, or a temporary refusal.
   */
  async #commit() {
    const pending = this.#pending;
    this.#pending = null;
    const refuse = (reason) => ({ tag: "refuse", val: { reason, permanent: false, disconnect: false } });
    const failure = (error) => refuse(isStorageFull(error) ? "storage-full" : "local-error");
    if (pending?.error) return failure(pending.error);
    if (!pending) return refuse("local-error"); // the guard rules this out
    try {
      await pending.txn.commit();
      this.#ctx.log(`message stored: ${pending.txn.queueId}`);
      return { tag: "accept", val: pending.txn.queueId };
    } catch (error) {
      this.#ctx.log(`cannot make the message durable: ${error.message}`);
      return failure(error);
    }
  }

  async discardPending() {
    const txn = this.#pending?.txn;
    this.#pending = null;
    await txn?.discard();
  }
}

function writeAll(socket, bytes) {
  return new Promise((resolve, reject) => socket.write(bytes, (err) => (err ? reject(err) : resolve())));
}

/** `::ffff:192.0.2.1` (an IPv4 client on a dual-stack socket) is `192.0.2.1`. */
function canonicalIp(ip) {
  return ip.startsWith("::ffff:") && ip.includes(".") ? ip.slice(7) : ip;
}
