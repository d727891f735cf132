// Runs the transcript corpus through the component in Node (jco), fed in
// every plan, and prints one line per transcript and `N passed, M failed`.
//
//   node tests/hosts/node/run-transcripts.mjs --component FILE.wasm --transcripts DIR

import { parseArgs } from "node:util";

import { LoadedComponent } from "./lib/component.mjs";
import { checkOutcome, runTranscript } from "./lib/runner.mjs";
import { feedPlans, loadCorpus } from "./lib/transcript.mjs";

const { values: args } = parseArgs({
  options: { component: { type: "string" }, transcripts: { type: "string" } },
});
if (!args.component || !args.transcripts) {
  console.error("usage: run-transcripts.mjs --component FILE.wasm --transcripts DIR");
  process.exit(2);
}

const component = await LoadedComponent.load(args.component);
const corpus = loadCorpus(args.transcripts);
if (corpus.length === 0) {
  // An empty corpus passing would prove nothing.
  console.error(`no *.txt transcripts in ${args.transcripts}`);
  process.exit(1);
}
let passed = 0;
let failed = 0;
for (const t of corpus) {
  const plans = feedPlans(t);
  let failure = null;
  for (const [plan, chunks] of plans) {
    try {
      checkOutcome(t, await runTranscript(component, t, chunks));
    } catch (err) {
      failure = `[${plan}] ${err.message}`;
      break; // one plan's failure per transcript is enough to read
    }
  }
  if (failure) {
    failed++;
    console.log(`FAIL ${t.name} ${failure.replaceAll("\n", "\n     ")}`);
  } else {
    passed++;
    console.log(`ok   ${t.name} (${plans.length} plans)`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
