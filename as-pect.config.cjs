// as-pect 8.1 configuration for the crypto known-answer specs in test/as/.
// Run: npx asp --config as-pect.config.cjs --as-config test/as/as-pect.asconfig.json
//
// The compiler options for the spec builds live in test/as/as-pect.asconfig.json. They do NOT
// extend the firmware's asconfig.json: the firmware build uses the stub runtime, a one-page
// memory cap and a custom abort (env.trap), none of which the as-pect harness can run under
// (it needs its own abort and a growable memory). The code under test is compiled as-is.
const fs = require("fs");
const path = require("path");

// `asp` defaults to ./as-pect.asconfig.json when --as-config is not given. If that file does not
// exist, point as-pect at test/as/as-pect.asconfig.json instead, so that a bare
// `asp --config as-pect.config.cjs` also works. (as-pect reads the option from commander's shared
// option object after loading this file.)
const SPEC_ASCONFIG = "./test/as/as-pect.asconfig.json";
try {
  const { program } = require("commander");
  const opts = program.opts();
  if (opts && opts.asConfig === "./as-pect.asconfig.json" && !fs.existsSync(path.resolve(opts.asConfig))) {
    opts.asConfig = SPEC_ASCONFIG;
  }
} catch (_) {
  // Pass --as-config explicitly if this fallback cannot be applied.
}

module.exports = {
  /** Spec entry points: one wasm module is compiled and run per file. */
  entries: ["test/as/**/*.spec.ts"],
  /** Files added to every compilation. */
  include: ["test/as/**/*.include.ts"],
  disclude: [/node_modules/],
  async instantiate(memory, createImports, instantiate, binary) {
    return instantiate(binary, createImports({ env: { memory } }));
  },
  outputBinary: false,
};
