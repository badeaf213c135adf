/*
 * Included (clang -include) into wasm2c's translation of the firmware for the fuzz build; the
 * translation calls these at every load, store, function entry and trap (fuzz/wasm2c-patch.mjs).
 * Defined in common.h.
 *
 * Over-read detection: before every export call the harness marks the bytes of the I/O buffer
 * past the input that call was given as poisoned; a store clears the mark, a load of a marked
 * byte is a crash ("over-read"). Only loads inside [fuzz_shadow_lo, fuzz_shadow_hi) go to the
 * out-of-line check, so the cost elsewhere is two compares.
 */
#include <stdint.h>

extern uint64_t fuzz_shadow_lo, fuzz_shadow_hi;
void fuzz_shadow_load(uint64_t a, uint64_t n);
void fuzz_shadow_store(uint64_t a, uint64_t n);
extern const char *fuzz_fn_stack[];
void fuzz_on_trap(void);
extern uint32_t wasm_rt_call_stack_depth;

#define FUZZ_IN_SHADOW(a, n) __builtin_expect((uint64_t)(a) < fuzz_shadow_hi && (uint64_t)(a) + (n) > fuzz_shadow_lo, 0)
#define FUZZ_ON_LOAD(a, n) do { if (FUZZ_IN_SHADOW(a, n)) fuzz_shadow_load((a), (n)); } while (0)
#define FUZZ_ON_STORE(a, n) do { if (FUZZ_IN_SHADOW(a, n)) fuzz_shadow_store((a), (n)); } while (0)
#define FUZZ_ON_ENTER(name) (fuzz_fn_stack[wasm_rt_call_stack_depth & 255] = (name))
#define FUZZ_ON_TRAP() fuzz_on_trap()
