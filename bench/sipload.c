/* Closed-loop SIP UDP load generator for bench/sip.py (goip-tw).
 *
 * usage: sipload HOST PORT SECONDS WINDOW PROCS TEMPLATE_FILE
 *
 * Every request is TEMPLATE_FILE with each "XXXXXXXXXXXX" replaced by a
 * 12-digit hex counter (unique branch and Call-ID).  Each of PROCS processes
 * keeps WINDOW requests outstanding on its own socket and sends a new one per
 * reply; after 200 ms without a reply it refills the window (losses).  Prints
 * "replies=N ok=M seconds=S" (ok = 2xx) for the measured interval, which
 * starts after a 1 s warm-up.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s host port seconds window procs template\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double seconds = atof(argv[3]);
    int window = atoi(argv[4]);
    int procs = atoi(argv[5]);
    FILE *f = fopen(argv[6], "rb");
    if (!f) { perror("template"); return 2; }
    static char tmpl[65536];
    size_t len = fread(tmpl, 1, sizeof tmpl, f);
    fclose(f);
    size_t offs[16]; int noffs = 0;
    for (size_t i = 0; i + 12 <= len && noffs < 16; i++)
        if (memcmp(tmpl + i, "XXXXXXXXXXXX", 12) == 0) { offs[noffs++] = i; i += 11; }
    int pipes[64][2];
    if (procs < 1) procs = 1;
    if (procs > 64) procs = 64;
    for (int p = 0; p < procs; p++) {
        if (pipe(pipes[p]) < 0) { perror("pipe"); return 2; }
        pid_t pid = fork();
        if (pid == 0) {
            int s = socket(AF_INET, SOCK_DGRAM, 0);
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            inet_pton(AF_INET, host, &a.sin_addr);
            if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); _exit(2); }
            int big = 4 << 20;
            setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
            struct timeval tv = {0, 200000};
            setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            char buf[65536], rbuf[65536], hex[13];
            memcpy(buf, tmpl, len);
            unsigned long long counter = ((unsigned long long)p << 40) | ((unsigned long long)getpid() << 20);
            double start = now(), t0 = start + 1.0, t1 = t0 + seconds;
            long replies = 0, ok = 0;
            for (int i = 0; i < window; i++) {
                snprintf(hex, sizeof hex, "%012llx", counter++);
                for (int k = 0; k < noffs; k++) memcpy(buf + offs[k], hex, 12);
                send(s, buf, len, 0);
            }
            for (;;) {
                ssize_t n = recv(s, rbuf, sizeof rbuf, 0);
                double t = now();
                if (t >= t1) break;
                int refill = 1;
                if (n > 0) {
                    if (t >= t0) {
                        replies++;
                        if (n > 9 && rbuf[8] == '2') ok++;
                    }
                } else {
                    refill = window;
                }
                for (int i = 0; i < refill; i++) {
                    snprintf(hex, sizeof hex, "%012llx", counter++);
                    for (int k = 0; k < noffs; k++) memcpy(buf + offs[k], hex, 12);
                    send(s, buf, len, 0);
                }
            }
            char out[64];
            int m = snprintf(out, sizeof out, "%ld %ld\n", replies, ok);
            write(pipes[p][1], out, m);
            _exit(0);
        }
        close(pipes[p][1]);
    }
    long total = 0, total_ok = 0;
    for (int p = 0; p < procs; p++) {
        char in[64] = {0};
        ssize_t n = read(pipes[p][0], in, sizeof in - 1);
        long r = 0, o = 0;
        if (n > 0) sscanf(in, "%ld %ld", &r, &o);
        total += r; total_ok += o;
    }
    while (wait(NULL) > 0) {}
    printf("replies=%ld ok=%ld seconds=%.3f\n", total, total_ok, seconds);
    return 0;
}
