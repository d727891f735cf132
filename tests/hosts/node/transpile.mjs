// Transpiles a component with jco into build/<digest>/ (skipped when that
// exact .wasm was transpiled before) and prints the folder. The entry
// scripts do this on demand; running it first only moves the cost.
//
//   node tests/hosts/node/transpile.mjs --component FILE.wasm

import { parseArgs } from "node:util";

import { transpileCached } from "./lib/component.mjs";

const { values: args } = parseArgs({ options: { component: { type: "string" } } });
if (!args.component) {
  console.error("usage: transpile.mjs --component FILE.wasm");
  process.exit(2);
}
console.log(await transpileCached(args.component));
