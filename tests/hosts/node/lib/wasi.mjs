// The WASI imports handed to the component. Rust's standard library makes
// a guest import parts of WASI p2 even when the protocol code never uses
// them; the native host links all of WASI p2 with an empty context, so any
// component it accepts instantiates, and nothing it reaches for exists.
// jco has no such context, so this module takes preview2-shim's
// implementations and shuts every door that leads outside the process:
//
//   environment  no variables, no arguments, no initial directory
//   filesystem   no preopened directory, so no file can ever be opened
//   sockets      TCP, UDP and name lookups denied on the only network
//   stdin        denied: asking for it traps
//   stdout/err   both go to this process's stderr (a panic message lands in
//                the host's log, never in its stdout, which carries reports)
//   exit         traps instead of ending the host process
//   clocks       read-only wall and monotonic clocks
//   random       the OS random source (std seeds its hash maps with it)
//
// wasi:http is not offered: a component importing it fails to instantiate.
// The shim's knobs are process-wide, which is fine: the process hosts
// nothing but this component.

import { cli, clocks, filesystem, io, random, sockets } from "@bytecodealliance/preview2-shim";

import { GuestFault } from "./guard.mjs";

cli._setEnv({});
cli._setArgs([]);
cli._setCwd(undefined);
filesystem._clearPreopens();
sockets._denyTcp();
sockets._denyUdp();
sockets._denyDnsLookup();

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
  "wasi:clocks/monotonic-clock": clocks.monotonicClock,
  "wasi:clocks/wall-clock": clocks.wallClock,
  "wasi:filesystem/preopens": filesystem.preopens,
  "wasi:filesystem/types": filesystem.types,
  "wasi:io/error": io.error,
  "wasi:io/poll": io.poll,
  "wasi:io/streams": io.streams,
  "wasi:random/insecure": random.insecure,
  "wasi:random/insecure-seed": random.insecureSeed,
  "wasi:random/random": random.random,
  "wasi:sockets/instance-network": sockets.instanceNetwork,
  "wasi:sockets/ip-name-lookup": sockets.ipNameLookup,
  "wasi:sockets/network": sockets.network,
  "wasi:sockets/tcp": sockets.tcp,
  "wasi:sockets/tcp-create-socket": sockets.tcpCreateSocket,
  "wasi:sockets/udp": sockets.udp,
  "wasi:sockets/udp-create-socket": sockets.udpCreateSocket,
});
