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
  const answers = [...t.answers];
  const output = [];
  const messages = [];
  let current = null;
  let next = 0;
  let actions = session.greeting();
  let call; // what produced `actions`: see ActionGuard.check
  const finished = () => {
    // An answer never asked for is a transcript that does not test what it says.
    if (answers.length) throw new Error(`${answers.length} answers left over: the session asked fewer questions`);
    return { output: Buffer.concat(output), messages };
  };
  for (;;) {
    guard.check(actions, call);
    let question = null;
    for (const action of actions) {
      switch (action.tag) {
        case "send": output.push(Buffer.from(action.val)); break;
        case "message-begin": current = []; break;
        case "message-data": current.push(Buffer.from(action.val)); break;
        case "message-abort": current = null; break;
        case "ask":
          question = action.val.tag;
          // The end-of-message question ends the message, whatever the answer.
          if (question === "message-end") { messages.push(Buffer.concat(current)); current = null; }
          break;
        case "close": return finished();
      }
    }
    if (question) {
      actions = session.answer(nextAnswer(answers, question, messages.length));
      call = "answer";
    } else if (next < chunks.length) {
      call = { feed: chunks[next].length };
      actions = session.feed(chunks[next++]);
    } else {
      return finished();
    }
  }
}

/**
 * The decision of the next `A:` line, which must name the question asked;
 * once they run out, accept: `message-end` with the queue id `Qn` (n
 * counting the messages that reached their end), the others with no text.
 */
function nextAnswer(answers, question, ended) {
  const answer = answers.shift();
  if (!answer) return { tag: "accept", val: question === "message-end" ? `Q${ended}` : undefined };
  if (answer.question !== question) {
    throw new Error(`the session asked ${question}, the next A: line answers ${answer.question}`);
  }
  return answer.decision;
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
