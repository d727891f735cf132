// Pull-style reads from a net.Socket with a timeout, so the connection loop
// can be written as "execute actions, then read" like the native host's.
// The socket is paused after every chunk: nothing is read from the client
// faster than the guest consumes it.

export const TIMED_OUT = Symbol("timed out");

export class SocketReader {
  #socket;
  #chunks = [];
  #ended = false;
  #error = null;
  #wake = null;

  constructor(socket) {
    this.#socket = socket;
    socket.on("data", (chunk) => {
      this.#chunks.push(chunk);
      socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#finish(null));
    socket.on("close", () => this.#finish(null));
    socket.on("error", (err) => this.#finish(err));
  }

  /** The next chunk, `null` at end of stream, or TIMED_OUT after `timeoutMs` of silence. */
  async read(timeoutMs) {
    if (this.#chunks.length === 0 && !this.#ended) {
      this.#socket.resume();
      let timer;
      await new Promise((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
    if (this.#chunks.length > 0) return this.#chunks.shift();
    if (this.#error) throw this.#error;
    return this.#ended ? null : TIMED_OUT;
  }

  #finish(err) {
    this.#error ??= err;
    this.#ended = true;
    this.#notify();
  }

  #notify() {
    this.#wake?.();
  }
}
