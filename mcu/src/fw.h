/* One way to run the firmware module on the MCU: wasm3 (engine_wasm3.c) or the module compiled
   ahead of time by wasm2c (engine_wasm2c.c). Values are wasm i32/i64 widened to 64 bits. */
#ifndef FW_H
#define FW_H
#include <stdint.h>

/* Instantiates the module (from flash) and runs its `_start`. NULL or why it failed. */
const char *fw_load(void);
/* Calls an export. Returns NULL, or the trap message (the firmware's abort message if it gave one).
   `*has_result` is 0 for no result, 1 for an i32 (sign-extended), 2 for an i64. */
const char *fw_call(const char *name, int argc, const uint64_t *args, uint64_t *result, int *has_result);
/* Linear memory: base and size in bytes. */
uint8_t *fw_memory(uint32_t *size);
/* Export names, one per call with index 0.., NULL past the end. */
const char *fw_export_name(int index);
/* How deep the engine's own value stack went, in bytes (0 when the engine has none). */
uint32_t fw_value_stack_high_water(void);
/* The engine's name for reports. */
extern const char fw_engine_name[];

/* The module's `env.trap(messagePtr, filePtr, line, column)`: keeps the abort message. */
void fw_record_abort(uint32_t message_ptr, uint32_t file_ptr, uint32_t line, uint32_t column);
const char *fw_take_abort(void);
#endif
