#include "sandbox/seccomp_profile.h"

#include <sched.h>

namespace custos {
namespace {

// What a network daemon needs: files, sockets, memory, threads, timers and
// signals. Left out on purpose: mount and the new mount API, ptrace and
// process_vm_*, module loading, kexec, bpf, perf_event_open, keyrings,
// unshare/setns (new namespaces), pivot_root/chroot, swap, reboot, clock
// setting, io_uring, userfaultfd, open_by_handle_at, mknod, personality.
const char* const kAllowedSyscalls[] = {
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fallocate", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fstat", "fstatfs", "fsync",
    "ftruncate", "futex", "futex_waitv", "getcpu", "getcwd", "getdents", "getdents64",
    "getegid", "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
    "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
    "gettid", "gettimeofday", "getuid", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "ioctl", "kill", "lgetxattr", "link", "linkat",
    "listen", "listxattr", "llistxattr", "lseek", "lstat", "madvise", "membarrier",
    "memfd_create", "mincore", "mkdir", "mkdirat", "mlock", "mlock2", "mlockall", "mmap",
    "mprotect", "mremap", "msync", "munlock", "munlockall", "munmap", "nanosleep",
    "newfstatat", "open", "openat", "openat2", "pause", "pipe", "pipe2", "poll", "ppoll",
    "prctl", "pread64", "preadv", "preadv2", "prlimit64", "pselect6", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg",
    "recvmsg", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_setaffinity", "sched_yield", "select", "sendfile",
    "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsuid", "setgid", "setgroups",
    "setitimer", "setpgid", "setpriority", "setregid", "setresgid", "setresuid", "setreuid",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_tid_address", "setuid",
    "shutdown", "sigaltstack", "signalfd", "signalfd4", "socket", "socketpair", "splice",
    "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime",
    "tkill", "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes",
    "vfork", "wait4", "waitid", "write", "writev"};

constexpr unsigned long kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
                                          CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                          CLONE_NEWCGROUP | CLONE_NEWTIME;

}  // namespace

nlohmann::json InstrumentSeccompProfile() {
  auto allowed = nlohmann::json::array();
  for (const char* name : kAllowedSyscalls) allowed.push_back(name);
  auto syscalls = nlohmann::json::array();
  syscalls.push_back({{"names", allowed}, {"action", "SCMP_ACT_ALLOW"}});
  // Threads and processes yes, new namespaces no.
  syscalls.push_back({{"names", {"clone"}},
                      {"action", "SCMP_ACT_ALLOW"},
                      {"args", {{{"index", 0}, {"value", kNamespaceFlags}, {"valueTwo", 0},
                                 {"op", "SCMP_CMP_MASKED_EQ"}}}}});
  // clone3 passes its flags in memory seccomp cannot read; ENOSYS makes libc
  // fall back to clone, which the rule above checks.
  syscalls.push_back({{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 38}});
  return {{"defaultAction", "SCMP_ACT_ERRNO"},
          {"defaultErrnoRet", 1},
          {"architectures", {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"}},
          {"syscalls", syscalls}};
}

}  // namespace custos
