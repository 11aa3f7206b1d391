/* The machine's floor for a round trip between two processes: 64 bytes
 * each way over a socketpair, each side waiting in poll() as securer's
 * host and child do. Prints microseconds per round trip.
 *   cc -O2 -o pingpong bench/pingpong.c && ./pingpong [n] */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int wait_read(int fd, char *buf, size_t len) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, -1) != 1) return -1;
  return read(fd, buf, len) == (ssize_t)len ? 0 : -1;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 100000;
  char buf[64] = {0};
  int sv[2];
  if (n <= 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    close(sv[0]);
    while (wait_read(sv[1], buf, sizeof buf) == 0) {
      if (write(sv[1], buf, sizeof buf) != sizeof buf) break;
    }
    _exit(0);
  }
  close(sv[1]);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; i++) {
    if (write(sv[0], buf, sizeof buf) != sizeof buf || wait_read(sv[0], buf, sizeof buf) != 0) {
      return 1;
    }
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  close(sv[0]);
  waitpid(pid, NULL, 0);
  printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n / 1e3);
  return 0;
}
