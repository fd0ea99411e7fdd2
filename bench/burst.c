/*
 * The connection-burst client of bench/server.ts (issue 17 item 6), in C: it opens N idle
 * WebSocket connections at once (raw handshakes: the upgrade request, then the 101 and the
 * first frame after it, the hello) and holds them. It does what bench/server.ts's Node burst
 * client does at a fraction of the CPU: the load generator shares this machine's two cores
 * with the server it measures, and every millisecond it spends is one the server waits for
 * (a real burst comes over the network, from other machines). wrk is C for the same reason.
 *
 * Commands on stdin, one a line; answers on stdout, one JSON line each:
 *   burst N   → {"start":MS,"end":MS,"opened":K,"failed":F,"cpuMs":C}  (wall-clock ms since
 *               the epoch, as performance.timeOrigin + performance.now() gives in Node)
 *   drop      → {"dropped":true}   (closes every connection it holds)
 *   EOF       → exits
 *
 *   gcc -O2 -o burst bench/burst.c && ./burst HOST PORT PATH ORIGIN
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CONNECTIONS = 65536, REPLY_BYTES = 4096 };

typedef struct {
  int fd;
  int sent;     /* the upgrade request is written */
  int done;     /* 1 opened, -1 failed, 0 pending */
  size_t got;   /* bytes of the reply so far */
  char reply[REPLY_BYTES];
} Connection;

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1e3 + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e3;
}

/* A fresh Sec-WebSocket-Key: 16 random bytes in base64 (24 characters), so the server hashes a new key each time. */
static void websocket_key(char out[25]) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char raw[18] = {0};
  for (int i = 0; i < 16; i++) raw[i] = (unsigned char)(rand() & 0xff);
  for (int i = 0, o = 0; i < 18; i += 3) {
    unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = b64[v >> 6 & 63];
    out[o++] = b64[v & 63];
  }
  out[22] = out[23] = '=';
  out[24] = 0;
}

/* Reads what the server sent; an opened connection has the 101, its headers' end and at least one byte after them. */
static void on_readable(Connection *c) {
  for (;;) {
    if (c->got == REPLY_BYTES) { c->done = -1; return; }
    ssize_t n = read(c->fd, c->reply + c->got, REPLY_BYTES - c->got);
    if (n > 0) { c->got += (size_t)n; continue; }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    c->done = -1; /* closed or failed before the hello */
    return;
  }
  char *end = memmem(c->reply, c->got, "\r\n\r\n", 4);
  if (end == NULL) return;
  if (c->got < 12 || memcmp(c->reply, "HTTP/1.1 101", 12) != 0) { c->done = -1; return; }
  if ((size_t)(end + 4 - c->reply) < c->got) c->done = 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s HOST PORT PATH ORIGIN\n", argv[0]);
    return 2;
  }
  const char *host = argv[1], *path = argv[3], *origin = argv[4];
  int port = atoi(argv[2]);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
    fprintf(stderr, "burst: %s is not an IPv4 address\n", host);
    return 2;
  }
  srand((unsigned)(wall_ms() * 1000) ^ (unsigned)getpid());
  int ep = epoll_create1(0);
  static Connection held[MAX_CONNECTIONS];
  int count = 0;
  char line[64];
  setvbuf(stdout, NULL, _IOLBF, 0);
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "drop", 4) == 0) {
      for (int i = 0; i < count; i++) close(held[i].fd);
      count = 0;
      printf("{\"dropped\":true}\n");
      continue;
    }
    int n = 0;
    if (sscanf(line, "burst %d", &n) != 1 || n <= 0 || count + n > MAX_CONNECTIONS) {
      fprintf(stderr, "burst: cannot do '%s'\n", line);
      return 2;
    }
    double start = wall_ms(), cpu = cpu_ms();
    int first = count, pending = 0;
    /* every connect at once, as the Node client's Promise.all does */
    for (int i = 0; i < n; i++) {
      Connection *c = &held[count++];
      memset(c, 0, offsetof(Connection, reply));
      c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS)) {
        c->done = -1;
        continue;
      }
      struct epoll_event e = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
      epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
      pending++;
    }
    struct epoll_event events[256];
    while (pending > 0) {
      int k = epoll_wait(ep, events, 256, 30000);
      if (k <= 0) break; /* 30 s without news: what is still pending failed */
      for (int j = 0; j < k; j++) {
        Connection *c = events[j].data.ptr;
        if (c->done != 0) continue;
        if (events[j].events & (EPOLLERR | EPOLLHUP) && !(events[j].events & EPOLLIN)) c->done = -1;
        else if (!c->sent && events[j].events & EPOLLOUT) {
          char key[25], request[512];
          websocket_key(key);
          int len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nOrigin: %s\r\n\r\n", path, host, port, key, origin);
          if (write(c->fd, request, (size_t)len) != len) c->done = -1;
          else {
            c->sent = 1;
            struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
          }
        } else if (events[j].events & EPOLLIN) on_readable(c);
        if (c->done != 0) {
          pending--;
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        }
      }
    }
    int opened = 0, failed = 0;
    for (int i = first; i < count; i++) {
      if (held[i].done == 1) opened++;
      else {
        failed++;
        if (held[i].fd >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, held[i].fd, NULL);
      }
    }
    printf("{\"start\":%.3f,\"end\":%.3f,\"opened\":%d,\"failed\":%d,\"cpuMs\":%.3f}\n", start, wall_ms(), opened, failed, cpu_ms() - cpu);
  }
  return 0;
}
