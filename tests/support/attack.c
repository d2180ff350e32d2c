/*
 * A static multi-tool for the end-to-end tests: each subcommand is one behaviour a
 * detection rule describes, done with plain syscalls, so it runs the same in a
 * busybox container as on the host. The tests copy it under the name a rule looks
 * for (nginx, login, ssh, debugfs, ...): a process's name is its executable's.
 *
 *   attack open PATH                  open PATH exactly as given, read a byte
 *   attack sleep-open SECS PATH       the same after SECS seconds
 *   attack open-many N PATH           open PATH and read a byte, N times over (one
 *                                     process: a flood of identical alerts)
 *   attack spawn PROG [ARG...]        fork, exec PROG with ARGs, wait
 *   attack connect IP PORT            a TCP connect; exit 0 when it succeeded
 *   attack memfd-exec FILE [ARG...]   copy FILE into a memfd and execute that
 *   attack ptrace-attach PID          attach to PID, wait for its stop, detach
 *   attack traceme                    ask to be traced (an anti-debugging trick)
 *   attack sleep SECS                 sleep (a process that is still there when the
 *                                     agent reads its /proc entry)
 *   attack true                       nothing (a process with the tool's name)
 *   attack write PATH                 create or truncate PATH and write a line
 *   attack append PATH                append a line to PATH (creating it)
 *   attack open-write PATH            open PATH for writing, write nothing
 *   attack connect-unix PATH          connect to the unix socket PATH; 0 on success
 *   attack load-module FILE           finit_module(FILE): refused or not, asked
 *   attack memfd-create               make a memfd, write to it, run nothing
 *   attack alloc MIB SECS             allocate and touch MIB MiB, hold them SECS
 *   attack child-mem                  fork a child, open its /proc/PID/mem and read
 *                                     from it (another process's memory), kill it
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int read_one(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    char c;
    (void)read(fd, &c, 1);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: attack COMMAND ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "open") && argc == 3) {
        return read_one(argv[2]);
    }
    if (!strcmp(cmd, "open-many") && argc == 4) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            if (read_one(argv[3])) {
                return 1;
            }
        }
        return 0;
    }
    if (!strcmp(cmd, "sleep-open") && argc == 4) {
        sleep((unsigned)atoi(argv[2]));
        return read_one(argv[3]);
    }
    if (!strcmp(cmd, "spawn") && argc >= 3) {
        pid_t pid = fork();
        if (pid == 0) {
            execve(argv[2], argv + 2, environ);
            perror(argv[2]);
            _exit(127);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    }
    if (!strcmp(cmd, "connect") && argc == 4) {
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_port = htons((unsigned short)atoi(argv[3]));
        if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
            return 2;
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int rc = connect(s, (struct sockaddr *)&a, sizeof a);
        close(s);
        return rc == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "memfd-exec") && argc >= 3) {
        int in = open(argv[2], O_RDONLY);
        int fd = memfd_create("monitor-attack", 0);
        if (in < 0 || fd < 0) {
            return 1;
        }
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof buf)) > 0) {
            if (write(fd, buf, (size_t)n) != n) {
                return 1;
            }
        }
        close(in);
        fexecve(fd, argv + 2, environ);
        perror("fexecve");
        return 1;
    }
    if (!strcmp(cmd, "ptrace-attach") && argc == 3) {
        pid_t pid = (pid_t)atoi(argv[2]);
        if (ptrace(PTRACE_ATTACH, pid, 0, 0) != 0) {
            perror("PTRACE_ATTACH");
            return 1;
        }
        waitpid(pid, NULL, 0);
        return ptrace(PTRACE_DETACH, pid, 0, 0) == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "traceme")) {
        return ptrace(PTRACE_TRACEME, 0, 0, 0) == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "sleep") && argc == 3) {
        sleep((unsigned)atoi(argv[2]));
        return 0;
    }
    if ((!strcmp(cmd, "write") || !strcmp(cmd, "append")) && argc == 3) {
        int flags = O_WRONLY | O_CREAT | (!strcmp(cmd, "write") ? O_TRUNC : O_APPEND);
        int fd = open(argv[2], flags, 0644);
        if (fd < 0 || write(fd, "monitor-test\n", 13) != 13) {
            perror(argv[2]);
            return 1;
        }
        return close(fd);
    }
    if (!strcmp(cmd, "open-write") && argc == 3) {
        int fd = open(argv[2], O_WRONLY);
        if (fd < 0) {
            perror(argv[2]);
            return 1;
        }
        return close(fd);
    }
    if (!strcmp(cmd, "connect-unix") && argc == 3) {
        struct sockaddr_un a = {0};
        a.sun_family = AF_UNIX;
        strncpy(a.sun_path, argv[2], sizeof a.sun_path - 1);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        int rc = connect(s, (struct sockaddr *)&a, sizeof a);
        close(s);
        return rc == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "load-module") && argc == 3) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) {
            perror(argv[2]);
            return 1;
        }
        return syscall(SYS_finit_module, fd, "", 0) == 0 ? 0 : 1;
    }
    if (!strcmp(cmd, "alloc") && argc == 4) {
        size_t bytes = (size_t)atoi(argv[2]) << 20;
        char *p = malloc(bytes);
        if (!p) {
            return 1;
        }
        memset(p, 1, bytes);
        sleep((unsigned)atoi(argv[3]));
        return p[bytes - 1] == 1 ? 0 : 1;
    }
    if (!strcmp(cmd, "memfd-create")) {
        int fd = memfd_create("monitor-buffer", 0);
        return fd >= 0 && write(fd, "x", 1) == 1 ? 0 : 1;
    }
    if (!strcmp(cmd, "child-mem")) {
        pid_t child = fork();
        if (child == 0) {
            pause();
            _exit(0);
        }
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/mem", (int)child);
        int rc = read_one(path);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        return rc;
    }
    if (!strcmp(cmd, "true")) {
        return 0;
    }
    fprintf(stderr, "attack: unknown command or arguments: %s\n", cmd);
    return 2;
}
