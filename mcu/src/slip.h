/* SLIP framing (RFC 1055) over the UART: one datagram per frame. */
#ifndef SLIP_H
#define SLIP_H
#include <stddef.h>
#include <stdint.h>

void slip_send(const uint8_t *bytes, size_t len);
/* One frame made of two parts (a header and a body), without copying them together. */
void slip_send2(const uint8_t *head, size_t head_len, const uint8_t *body, size_t body_len);
/* Waits until a whole frame has arrived or board_uptime_ms() reaches deadline_ms (UINT64_MAX: no
   deadline). Returns the frame length (frames longer than cap are dropped whole), or -1 on timeout. */
int slip_receive(uint8_t *out, size_t cap, uint64_t deadline_ms);
#endif
