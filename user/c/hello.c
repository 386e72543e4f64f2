/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* c-hello: a C program against libc-shim. Prints exactly one PASS or FAIL line. */
#include <damselfly.h>

static int fail(const char *why)
{
	printf("FAIL c-hello: %s (errno %d)\n", why, errno);
	return 1;
}

int main(int argc, char **argv, char **envp)
{
	(void)envp;
	char *buf = malloc(256);
	if (!buf)
		return fail("malloc");
	int fd = open("/etc/motd", O_RDONLY, 0);
	if (fd < 0)
		return fail("open /etc/motd");
	ssize_t n = read(fd, buf, 255);
	if (n <= 0)
		return fail("read /etc/motd");
	buf[n] = 0;
	close(fd);
	pid_t pid = getpid();
	if (pid <= 0)
		return fail("getpid");
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return fail("clock_gettime");
	char line[64];
	int len = snprintf(line, sizeof line, "%s|%5d|%-3x|%05ld|%c|%%", "ab", 42, 255, -12L, 'z');
	if (len != 22 || strcmp(line, "ab|   42|ff |-0012|z|%") != 0)
		return fail(line);
	buf = realloc(buf, 4096);
	if (!buf)
		return fail("realloc");
	free(buf);
	printf("PASS c-hello argc=%d argv0=%s pid=%d motd_bytes=%zu t=%ld.%09ld\n", argc,
	       argc > 0 ? argv[0] : "?", pid, (size_t)n, ts.tv_sec, ts.tv_nsec);
	return 0;
}
