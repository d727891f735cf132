// Runs one transcript through a component instance, as
// tests/transcripts/README.md ("How a driver runs a file") describes, and
// compares the outcome with what the transcript expects.

import { GuestSession, guestConfig } from "./component.mjs";
import { ActionGuard } from "./guard.mjs";
import { implicitTls, starttlsHandshakes } from "./transcript.mjs";

/**
 * Feeds each segment's chunks in order, executes the actions, answers the
 * questions and completes the TLS handshakes (`T:` lines); returns what
 * the run produced.
 * @param {Buffer[][]} segments the feed inputs of each segment (see feedPlans)
 */
export async function runTranscript(component, t, segments) {
  const handshakes = starttlsHandshakes(t);
  if (segments.length !== handshakes.length + 1) {
    throw new Error(`a feeding plan of ${segments.length} segments for a transcript of ${handshakes.length + 1}`);
  }
  const session = await GuestSession.start(component, guestConfig(t.config), { ip: t.config.peerIp, port: 40000 });
  // The server's guard checks every call here too: a sequence the corpus
  // accepts must never look like a contract violation to a host.
  // It takes start-tls and tls-started only where the transcript's host
  // offers TLS: STARTTLS switched on, or a handshake before the greeting.
  const tls = t.config.starttls || implicitTls(t) !== undefined;
  const guard = new ActionGuard(t.config.maxMessageSize, t.config.maxRecipients, { tls });
  const answers = [...t.answers];
  const output = [];
  const messages = [];
  let current = null;
  let segment = 0;
  let next = 0; // the next chunk of segments[segment]
  let implicit = implicitTls(t);
  let greeted = false;
  let question = null;
  let startTls = false;
  const finished = () => {
    // An answer never asked for, or a handshake never reached, is a
    // transcript that does not test what it says.
    if (answers.length) throw new Error(`${answers.length} answers left over: the session asked fewer questions`);
    if (segment < handshakes.length) {
      throw new Error(`line ${handshakes[segment].line}: a TLS handshake the session closed before`);
    }
    return { output: Buffer.concat(output), messages };
  };
  for (;;) {
    let actions;
    let call; // what produced `actions`: see ActionGuard.check
    if (implicit) {
      // RFC 8314: the handshake comes before the first byte of SMTP.
      actions = session.tlsStarted(implicit.tls);
      call = "tls-started";
      implicit = undefined;
    } else if (!greeted) {
      actions = session.greeting();
      greeted = true;
    } else if (question) {
      // The end-of-message question ends the message, whatever the answer.
      if (question === "message-end") { messages.push(Buffer.concat(current)); current = null; }
      actions = session.answer(nextAnswer(answers, question, messages.length));
      call = "answer";
      question = null;
    } else if (startTls) {
      startTls = false;
      const handshake = handshakes[segment];
      if (!handshake) throw new Error("the session emitted start-tls, but no T: line follows");
      // What is left of the segment is plaintext the client sent behind its
      // STARTTLS: the host discards what it read before the handshake (RFC
      // 3207 section 6), so it is never fed.
      segment++;
      next = 0;
      actions = session.tlsStarted(handshake.tls);
      call = "tls-started";
    } else if (next < segments[segment].length) {
      const chunk = segments[segment][next++];
      actions = session.feed(chunk);
      call = { feed: chunk.length };
    } else if (segment < handshakes.length) {
      throw new Error(
        `line ${handshakes[segment].line}: a TLS handshake, but the session did not emit start-tls before it`,
      );
    } else {
      return finished();
    }
    guard.check(actions, call);
    for (const action of actions) {
      switch (action.tag) {
        case "send": output.push(Buffer.from(action.val)); break;
        case "message-begin": current = []; break;
        case "message-data": current.push(Buffer.from(action.val)); break;
        case "message-abort": current = null; break;
        case "ask": question = action.val.tag; break;
        case "start-tls": startTls = true; break;
        case "close": return finished();
      }
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
