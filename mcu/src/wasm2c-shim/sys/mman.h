/* wasm2c's runtime includes <sys/mman.h> on every non-Windows target, but on a 32-bit MCU it
   takes the calloc path (no guard pages) and never calls these: declarations only, so its unused
   static helpers compile and are then discarded. */
#ifndef MCU_SYS_MMAN_H
#define MCU_SYS_MMAN_H
#include <stddef.h>
#include <sys/types.h>
#define PROT_NONE 0
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)
void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
int munmap(void *addr, size_t length);
int mprotect(void *addr, size_t len, int prot);
#endif
