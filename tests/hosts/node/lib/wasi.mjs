// The WASI imports handed to the component. Rust's standard library makes
// the guest import wasi:cli and wasi:io even though the protocol code never
// uses them; the native host links them with an empty context. jco has no
// such context, so this module takes preview2-shim's implementations and
// shuts every door that reaches outside the process:
//
//   environment  no variables, no arguments, no initial directory
//   stdin        denied: asking for it traps
//   stdout/err   both go to this process's stderr (a panic message lands in
//                the host's log, never in its stdout, which carries reports)
//   exit         traps instead of ending the host process
//   io           streams, pollables and errors for the above
//
// Nothing else is offered (no filesystem, clocks, random, sockets or http):
// a component that imports more fails to instantiate, and whoever grants
// more does it here, on purpose. The shim's knobs are process-wide, which
// is fine: the process hosts nothing but this component.

import { cli, io } from "@bytecodealliance/preview2-shim";

import { GuestFault } from "./guard.mjs";

cli._setEnv({});
cli._setArgs([]);
cli._setCwd(undefined);

function denied(what) {
  return () => {
    throw new GuestFault(`guest asked for ${what}, which this host does not grant`);
  };
}

const stderr = cli.stderr.getStderr();

/** Imports keyed the way jco's `--instantiation` output asks for them. */
export const wasiImports = Object.freeze({
  "wasi:cli/environment": cli.environment,
  "wasi:cli/exit": { exit: denied("wasi:cli/exit") },
  "wasi:cli/stdin": { getStdin: denied("stdin") },
  "wasi:cli/stdout": { getStdout: () => stderr },
  "wasi:cli/stderr": { getStderr: () => stderr },
  "wasi:cli/terminal-input": cli.terminalInput,
  "wasi:cli/terminal-output": cli.terminalOutput,
  "wasi:cli/terminal-stdin": cli.terminalStdin,
  "wasi:cli/terminal-stdout": cli.terminalStdout,
  "wasi:cli/terminal-stderr": cli.terminalStderr,
  "wasi:io/error": io.error,
  "wasi:io/poll": io.poll,
  "wasi:io/streams": io.streams,
});
