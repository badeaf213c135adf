/* Shared by both engines: the module's abort message (AssemblyScript UTF-16 strings, docs/abi.md). */
#include "fw.h"
#include <stdio.h>
#include <string.h>

static char abort_text[160];
static int abort_set;

static size_t as_string(char *out, size_t cap, uint32_t ptr) {
  uint32_t size;
  uint8_t *mem = fw_memory(&size);
  if (ptr < 4 || ptr > size) return 0;
  uint32_t bytes;
  memcpy(&bytes, mem + ptr - 4, 4);
  if (ptr + bytes > size) return 0;
  size_t n = 0;
  for (uint32_t i = 0; i + 1 < bytes && n + 1 < cap; i += 2) out[n++] = (char)mem[ptr + i];
  out[n] = 0;
  return n;
}

void fw_record_abort(uint32_t message_ptr, uint32_t file_ptr, uint32_t line, uint32_t column) {
  char msg[96], file[48];
  if (!as_string(msg, sizeof msg, message_ptr)) strcpy(msg, "(no message)");
  if (as_string(file, sizeof file, file_ptr)) {
    snprintf(abort_text, sizeof abort_text, "abort: %s at %s:%lu:%lu", msg, file, (unsigned long)line, (unsigned long)column);
  } else {
    snprintf(abort_text, sizeof abort_text, "abort: %s", msg);
  }
  abort_set = 1;
}

const char *fw_take_abort(void) {
  if (!abort_set) return NULL;
  abort_set = 0;
  return abort_text;
}
