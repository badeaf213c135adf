/* The module under wasm3, loaded from the const bytes in flash (session_wasm.c). */
#include "fw.h"
#include <string.h>
#include "wasm3.h"
#include "m3_env.h"

extern const uint8_t session_wasm[];
extern const uint32_t session_wasm_len;
/* The value stack wasm3 runs the module on. The ECDHE handshake needs 5,992 B with 64-bit slots
   (the Node addon, docs/engines.md); this image uses 32-bit slots, where npm run bench:mcu measures
   2.6 KiB for an ECDHE-ECDSA handshake with client authentication and 2.4 KiB for every PSK wake
   kind: 4 KiB keeps 50 % headroom and 2.75 KiB of RAM (issue 20). Too small is a clean trap
   ("stack overflow"), which the MCU conformance runs (ECDHE scenarios included) would show:
   re-measure when the firmware grows. */
#ifndef FW_WASM3_STACK_BYTES
#define FW_WASM3_STACK_BYTES (4 * 1024)
#endif

const char fw_engine_name[] = "wasm3";
#define VALUE_STACK_PAINT 0x5AC35AC3u
static IM3Environment env;
static IM3Runtime runtime;
static IM3Module module;

m3ApiRawFunction(env_trap) {
  m3ApiGetArg(uint32_t, message);
  m3ApiGetArg(uint32_t, file);
  m3ApiGetArg(uint32_t, line);
  m3ApiGetArg(uint32_t, column);
  fw_record_abort(message, file, line, column);
  m3ApiSuccess();
}

const char *fw_load(void) {
  M3Result r;
  env = m3_NewEnvironment();
  if (!env) return "m3_NewEnvironment: out of memory";
  runtime = m3_NewRuntime(env, FW_WASM3_STACK_BYTES, NULL);
  if (!runtime) return "m3_NewRuntime: out of memory";
  /* Painted, so fw_value_stack_high_water can tell how deep the module went (it grows upward). */
  for (uint32_t *p = runtime->stack, *end = p + FW_WASM3_STACK_BYTES / 4; p < end; p++) *p = VALUE_STACK_PAINT;
  if ((r = m3_ParseModule(env, &module, session_wasm, session_wasm_len))) return r;
  if ((r = m3_LoadModule(runtime, module))) return r;
  if ((r = m3_LinkRawFunction(module, "env", "trap", "v(iiii)", &env_trap))) return r;
  uint64_t ignored;
  int has;
  return fw_call("_start", 0, NULL, &ignored, &has);
}

const char *fw_call(const char *name, int argc, const uint64_t *args, uint64_t *result, int *has_result) {
  IM3Function f;
  M3Result r = m3_FindFunction(&f, runtime, name);
  if (r) return r;
  if (argc != (int)m3_GetArgCount(f) || argc > 6) return "wrong number of arguments";
  uint32_t a32[6];
  const void *ptrs[6];
  for (int i = 0; i < argc; i++) {
    if (m3_GetArgType(f, i) == c_m3Type_i64) {
      ptrs[i] = &args[i];
    } else {
      a32[i] = (uint32_t)args[i];
      ptrs[i] = &a32[i];
    }
  }
  r = m3_Call(f, (uint32_t)argc, ptrs);
  if (r) {
    const char *why = fw_take_abort();
    return why ? why : r;
  }
  *result = 0;
  *has_result = 0;
  if (m3_GetRetCount(f) > 0) {
    uint64_t v64 = 0;
    uint32_t v32 = 0;
    int wide = m3_GetRetType(f, 0) == c_m3Type_i64;
    *has_result = wide ? 2 : 1;
    const void *out[1] = { wide ? (void *)&v64 : (void *)&v32 };
    if ((r = m3_GetResults(f, 1, out))) return r;
    /* i32 results are sign-extended: the ABI's negative error codes stay negative. */
    *result = wide ? v64 : (uint64_t)(int64_t)(int32_t)v32;
  }
  return NULL;
}

uint8_t *fw_memory(uint32_t *size) {
  return m3_GetMemory(runtime, size, 0);
}

const char *fw_export_name(int index) {
  /* wasm3 keeps the export name on the function itself. */
  int seen = 0;
  for (uint32_t i = 0; i < module->numFunctions; i++) {
    const char *name = module->functions[i].export_name;
    if (name && seen++ == index) return name;
  }
  return NULL;
}

uint32_t fw_value_stack_high_water(void) {
  uint32_t *base = runtime->stack;
  uint32_t *p = base + FW_WASM3_STACK_BYTES / 4;
  while (p > base && p[-1] == VALUE_STACK_PAINT) p--;
  return (uint32_t)((char *)p - (char *)base);
}
