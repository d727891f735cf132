// Maildir delivery with the durability rules of host/src/spool/maildir.rs:
// a message is written under tmp/, the file is fsynced, renamed into new/,
// and new/ itself is fsynced; only then does the guest hear the answer. A
// reader never sees a partial file, a crash after the 250 cannot lose the
// message, and whatever does not reach commit is removed from tmp/.

import { mkdirSync } from "node:fs";
import { open, rename, unlink } from "node:fs/promises";
import { join } from "node:path";

import { traceHeaders } from "./trace.mjs";

export class Maildir {
  #root;
  #hostPart;
  #newDir;
  #counter = 0;

  constructor(root, hostname, newDir) {
    this.#root = root;
    // The Maildir convention escapes `/` and `:` in the host part of names.
    this.#hostPart = hostname.replaceAll("/", "\\057").replaceAll(":", "\\072");
    this.#newDir = newDir;
  }

  /** Opens (creating tmp/ new/ cur/ if missing) a Maildir at `root`. */
  static async open(root, hostname) {
    for (const sub of ["tmp", "new", "cur"]) mkdirSync(join(root, sub), { recursive: true });
    // Kept open so each commit can fsync new/ without reopening it.
    return new Maildir(root, hostname, await open(join(root, "new"), "r"));
  }

  /**
   * A name unique across processes and restarts: seconds and microseconds
   * of the clock, the process id, and a per-process counter. Opening with
   * `wx` turns any residual collision into a retry.
   */
  #unique() {
    const micros = BigInt(Math.floor((performance.timeOrigin + performance.now()) * 1000));
    return `${micros / 1_000_000n}.M${micros % 1_000_000n}P${process.pid}Q${this.#counter++}`;
  }

  /** Opens storage for one message and writes its trace headers. */
  async begin(envelope, meta) {
    for (;;) {
      const queueId = this.#unique();
      const name = `${queueId}.${this.#hostPart}`;
      const tmpPath = join(this.#root, "tmp", name);
      let file;
      try {
        file = await open(tmpPath, "wx");
      } catch (err) {
        if (err.code === "EEXIST") continue;
        throw err;
      }
      const txn = new Transaction(file, tmpPath, join(this.#root, "new", name), this.#newDir, queueId);
      await txn.write(traceHeaders(envelope, meta, queueId));
      return txn;
    }
  }
}

/** One message being written; `discard()` unless `commit()` succeeded. */
class Transaction {
  #file;
  #tmpPath;
  #newPath;
  #newDir;
  queueId;

  constructor(file, tmpPath, newPath, newDir, queueId) {
    this.#file = file;
    this.#tmpPath = tmpPath;
    this.#newPath = newPath;
    this.#newDir = newDir;
    this.queueId = queueId;
  }

  async write(bytes) {
    try {
      await this.#file.write(bytes);
    } catch (err) {
      await this.discard();
      throw err;
    }
  }

  /** Makes the message durable and visible; returns only once it survives a crash. */
  async commit() {
    const file = this.#file;
    this.#file = null;
    try {
      await file.sync();
      await file.close();
      await rename(this.#tmpPath, this.#newPath);
      await this.#newDir.sync();
    } catch (err) {
      // The client is about to hear 4xx and will send it again: the message
      // must not stay half-visible.
      await file.close().catch(() => {});
      await unlink(this.#tmpPath).catch(() => {});
      await unlink(this.#newPath).catch(() => {});
      throw err;
    }
  }

  /** Removes everything written (abort, disconnect, guest fault, write error). */
  async discard() {
    if (this.#file === null) return;
    const file = this.#file;
    this.#file = null;
    await file.close().catch(() => {});
    await unlink(this.#tmpPath).catch(() => {});
  }
}

/** Whether an I/O error means "out of space" (452) rather than a generic 451. */
export function isStorageFull(err) {
  return err?.code === "ENOSPC" || err?.code === "EDQUOT";
}
