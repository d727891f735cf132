// Runs one transcript through a component instance, as
// tests/transcripts/README.md ("How a driver runs a file") describes, and
// compares the outcome with what the transcript expects.

import { GuestSession, guestConfig } from "./component.mjs";
import { ActionGuard } from "./guard.mjs";

/** Feeds `chunks` in order and executes the actions; returns what the run produced. */
export async function runTranscript(component, t, chunks) {
  const session = await GuestSession.start(component, guestConfig(t.config), { ip: t.config.peerIp, port: 40000 });
  // The server's guard checks every call here too: a sequence the corpus
  // accepts must never look like a contract violation to a host.
  const guard = new ActionGuard(t.config.maxMessageSize, t.config.maxRecipients);
  const verdicts = [...t.verdicts];
  const output = [];
  const messages = [];
  let current = null;
  let next = 0;
  let actions = session.greeting();
  let call; // what produced `actions`: see ActionGuard.check
  for (;;) {
    guard.check(actions, call);
    let ended = false;
    for (const action of actions) {
      switch (action.tag) {
        case "send": output.push(Buffer.from(action.val)); break;
        case "message-begin": current = []; break;
        case "message-data": current.push(Buffer.from(action.val)); break;
        case "message-end": messages.push(Buffer.concat(current)); current = null; ended = true; break;
        case "message-abort": current = null; break;
        case "close": return { output: Buffer.concat(output), messages };
      }
    }
    if (ended) {
      actions = session.complete(verdicts.shift() ?? { tag: "accepted", val: `Q${messages.length}` });
      call = "complete";
    } else if (next < chunks.length) {
      call = { feed: chunks[next].length };
      actions = session.feed(chunks[next++]);
    } else {
      return { output: Buffer.concat(output), messages };
    }
  }
}

/** Throws a readable difference when the outcome is not what `t` expects. */
export function checkOutcome(t, outcome) {
  if (!outcome.output.equals(t.expected)) {
    throw new Error(`output differs\n--- expected\n${t.expected}\n--- got\n${outcome.output}`);
  }
  const same = outcome.messages.length === t.messages.length
    && outcome.messages.every((m, i) => m.equals(t.messages[i]));
  if (!same) {
    const show = (list) => JSON.stringify(list.map((m) => m.toString("latin1")));
    throw new Error(`stored messages differ\n--- expected ${show(t.messages)}\n--- got ${show(outcome.messages)}`);
  }
}
