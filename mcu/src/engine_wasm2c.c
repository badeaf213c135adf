/* The module compiled ahead of time by wasm2c (the native baseline), with Debian wabt's runtime. */
#include "fw.h"
#include <string.h>
#include "session.h"
#include "wasm-rt-impl.h"

const char fw_engine_name[] = "wasm2c";

struct Z_env_instance_t {
  int unused;
};

static Z_session_instance_t inst;
static struct Z_env_instance_t env;

/* The module's one import (docs/abi.md). */
void Z_envZ_trap(struct Z_env_instance_t *e, u32 message, u32 file, u32 line, u32 column) {
  (void)e;
  fw_record_abort(message, file, line, column);
}

const char *fw_wasm2c_call(Z_session_instance_t *inst, const char *name, int argc, const uint64_t *a, uint64_t *result, int *has_result);

static const char *trap_name(wasm_rt_trap_t code) {
  switch (code) {
    case WASM_RT_TRAP_OOB: return "out of bounds memory access";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    default: return "trap";
  }
}

const char *fw_load(void) {
  wasm_rt_init();
  Z_session_init_module();
  wasm_rt_trap_t code = wasm_rt_impl_try();
  if (code != 0) return trap_name(code);
  Z_session_instantiate(&inst, &env);
  uint64_t ignored;
  int has;
  return fw_call("_start", 0, NULL, &ignored, &has);
}

const char *fw_call(const char *name, int argc, const uint64_t *args, uint64_t *result, int *has_result) {
  wasm_rt_trap_t code = wasm_rt_impl_try();
  if (code != 0) {
    const char *why = fw_take_abort();
    return why ? why : trap_name(code);
  }
  return fw_wasm2c_call(&inst, name, argc, args, result, has_result);
}

uint8_t *fw_memory(uint32_t *size) {
  wasm_rt_memory_t *m = Z_sessionZ_memory(&inst);
  *size = m->size;
  return m->data;
}

/* wasm2c keeps the module's values on the C stack (counted in the board's stack high-water). */
uint32_t fw_value_stack_high_water(void) { return 0; }
