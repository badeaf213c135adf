#include "slip.h"
#include "board.h"

#define END 0xC0
#define ESC 0xDB
#define ESC_END 0xDC
#define ESC_ESC 0xDD

static const uint8_t end = END;

static void escaped_write(const uint8_t *bytes, size_t len) {
  static const uint8_t esc_end[2] = { ESC, ESC_END }, esc_esc[2] = { ESC, ESC_ESC };
  for (size_t i = 0; i < len; i++) {
    if (bytes[i] == END) board_uart_write(esc_end, 2);
    else if (bytes[i] == ESC) board_uart_write(esc_esc, 2);
    else board_uart_write(&bytes[i], 1);
  }
}

void slip_send2(const uint8_t *head, size_t head_len, const uint8_t *body, size_t body_len) {
  board_uart_write(&end, 1); /* a leading END flushes line noise as an empty frame */
  escaped_write(head, head_len);
  escaped_write(body, body_len);
  board_uart_write(&end, 1);
}

void slip_send(const uint8_t *bytes, size_t len) { slip_send2(bytes, len, bytes, 0); }

/* The frame being received survives a timeout: the next call continues it. */
static size_t have;
static int escaped, overflow;

int slip_receive(uint8_t *out, size_t cap, uint64_t deadline_ms) {
  for (;;) {
    int c = board_uart_read();
    if (c < 0) {
      if (board_uptime_ms() >= deadline_ms) return -1;
      board_idle();
      continue;
    }
    if (c == END) {
      size_t n = have;
      int dropped = overflow;
      have = 0;
      escaped = overflow = 0;
      if (n > 0 && !dropped) return (int)n;
      continue; /* empty frame or one too long for the buffer */
    }
    if (escaped) {
      c = c == ESC_END ? END : c == ESC_ESC ? ESC : c;
      escaped = 0;
    } else if (c == ESC) {
      escaped = 1;
      continue;
    }
    if (have < cap) out[have++] = (uint8_t)c;
    else overflow = 1;
  }
}
