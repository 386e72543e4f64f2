/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* damselfly.h: the C ABI of libc-shim (libdamselfly_c.a).
 *
 * Build a program:
 *   gcc -static -nostdlib -ffreestanding -fno-pie -no-pie -O2 -I libc-shim/include \
 *       prog.c libdamselfly_c.a -T libc-shim/link.ld -o prog
 * The library provides _start, which calls int main(int argc, char **argv, char **envp)
 * and exits with its return value. Failing calls return -1 and set errno. */
#ifndef DAMSELFLY_H
#define DAMSELFLY_H

#include <stddef.h>
#include <stdint.h>

typedef long ssize_t;
typedef long off_t;
typedef int pid_t;

extern int errno;

/* open flags (Linux values) */
#define O_RDONLY 00
#define O_WRONLY 01
#define O_RDWR 02
#define O_CREAT 0100
#define O_EXCL 0200
#define O_TRUNC 01000
#define O_APPEND 02000
#define O_DIRECTORY 0200000

#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1

#define WNOHANG 1
#define WIFEXITED(s) (((s) & 0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WIFSIGNALED(s) (((s) & 0x7f) != 0)
#define WTERMSIG(s) ((s) & 0x7f)

struct timespec {
	long tv_sec;
	long tv_nsec;
};

/* Simplified: mode is a fixed third argument (pass 0 when not creating). */
int open(const char *path, int flags, unsigned mode);
ssize_t read(int fd, void *buf, size_t n);
ssize_t write(int fd, const void *buf, size_t n);
int close(int fd);
off_t lseek(int fd, off_t offset, int whence);

void exit(int status) __attribute__((noreturn));
void _exit(int status) __attribute__((noreturn));
pid_t getpid(void);
int clock_gettime(int clock, struct timespec *ts);
/* rem is never written: sleeps are not interrupted. */
int nanosleep(const struct timespec *req, struct timespec *rem);
/* Simplified posix_spawn: no file actions or attributes; the child inherits fds 0, 1, 2.
 * Returns 0 or an error number. */
int posix_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[]);
pid_t waitpid(pid_t pid, int *status, int options);

void *malloc(size_t size);
void free(void *p);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);

size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* printf family: %d %i %u %x %X %o %s %c %p %% with l, ll, z, h, hh; flags - 0 + space #;
 * width and precision (digits or *). No floating point. */
typedef struct damselfly_file FILE;
#define stdout ((FILE *)1)
#define stderr ((FILE *)2)
int printf(const char *format, ...);
/* fprintf-lite: the FILE pointer is the descriptor number (stdout, stderr above). */
int fprintf(FILE *file, const char *format, ...);
int snprintf(char *buf, size_t size, const char *format, ...);
int puts(const char *s);
int putchar(int c);

#endif
