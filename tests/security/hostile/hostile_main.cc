// hostile: a test-only instrument that behaves as a compromised tool would.
// Each mode attacks one boundary and reports what happened as JSON lines
// on stdout ({"probe":..., "blocked":bool, "detail":...}); the security tests
// read them from the instrument's log. Nothing here decides that an attack
// failed without trying it.
//
//   hostile probe [--path P]...   try to escape: storage, host, processes,
//                                 capabilities, mount, ptrace, modules,
//                                 root filesystem, network; then exit 0
//   hostile transmit N            send N frames on mirror0 three ways, again on SIGUSR1
//   hostile sniff                 count frames seen on mirror0 into /data/sniffed
//   hostile forkbomb              fork until refused, then hold the processes
//   hostile memhog                allocate and touch memory until killed
//   hostile crash MS              segfault after MS milliseconds
//   hostile idle                  write /data/marker and /tmp/marker, tick /data/ticks
//   hostile markers TEXT          write /data/TEXT-file holding TEXT-content, then idle
//   hostile ring                  (network mode ring) try to write the capture ring
//                                 and to open sockets; then idle
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_again = 0;
void OnTerm(int) { g_stop = 1; }
void OnUsr1(int) { g_again = 1; }

std::string JsonEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out;
}

void Report(const std::string& probe, bool blocked, const std::string& detail) {
  std::printf("{\"probe\":\"%s\",\"blocked\":%s,\"detail\":\"%s\"}\n", probe.c_str(),
              blocked ? "true" : "false", JsonEscape(detail).c_str());
  std::fflush(stdout);
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Reading a path counts as blocked only if it cannot be opened at all.
void ProbePath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Report("read:" + path, true, Errno("open"));
    return;
  }
  struct stat info {};
  ::fstat(fd, &info);
  std::string detail = "opened";
  if (S_ISDIR(info.st_mode)) {
    DIR* dir = ::fdopendir(fd);
    int entries = 0;
    while (dir != nullptr && ::readdir(dir) != nullptr) ++entries;
    if (dir != nullptr) ::closedir(dir);
    detail = "listed " + std::to_string(entries) + " entries";
  } else {
    char buffer[64];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    detail = "read " + std::to_string(n) + " bytes";
    ::close(fd);
  }
  Report("read:" + path, false, detail);
}

void ProbeProcesses() {
  DIR* proc = ::opendir("/proc");
  int count = 0;
  std::string pids;
  while (dirent* entry = proc ? ::readdir(proc) : nullptr) {
    if (entry->d_name[0] >= '0' && entry->d_name[0] <= '9') {
      ++count;
      pids += std::string(entry->d_name) + " ";
    }
  }
  if (proc) ::closedir(proc);
  // Only this process (pid 1 of its namespace) may be visible.
  Report("see_other_processes", count == 1 && getpid() == 1, "visible pids: " + pids);
}

void ProbeCapabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = data[0].inheritable = 0xffffffff;
  data[1].effective = data[1].permitted = data[1].inheritable = 0xffffffff;
  int raised = static_cast<int>(::syscall(SYS_capset, &header, data));
  Report("raise_capabilities", raised != 0, raised != 0 ? Errno("capset") : "capset succeeded");
  int ambient = ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0);
  Report("raise_ambient_sys_admin", ambient != 0, ambient != 0 ? Errno("prctl") : "raised");
  std::ifstream status("/proc/self/status");
  std::string line, effective;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) effective = line;
  }
  // Granted capabilities are the manifest's; CAP_SYS_ADMIN (bit 21) must never be among them.
  unsigned long long mask = std::strtoull(
      effective.substr(effective.find_first_of("0123456789abcdef", 7)).c_str(), nullptr, 16);
  Report("holds_sys_admin", (mask & (1ull << CAP_SYS_ADMIN)) == 0, effective);
}

void ProbeMount() {
  ::mkdir("/tmp/mnt", 0700);
  int mounted = ::mount("none", "/tmp/mnt", "tmpfs", 0, nullptr);
  Report("mount_tmpfs", mounted != 0, mounted != 0 ? Errno("mount") : "mounted");
  int bound = ::mount("/", "/tmp/mnt", nullptr, MS_BIND, nullptr);
  Report("mount_bind", bound != 0, bound != 0 ? Errno("mount") : "bound");
  int remount = ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr);
  Report("remount_root_rw", remount != 0, remount != 0 ? Errno("mount") : "remounted");
  // A new user namespace would hand back every capability inside it.
  int unshared = ::unshare(CLONE_NEWUSER | CLONE_NEWNS);
  Report("unshare_user_namespace", unshared != 0, unshared != 0 ? Errno("unshare") : "unshared");
}

void ProbePtrace() {
  pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  long attached = ::ptrace(PTRACE_ATTACH, child, nullptr, nullptr);
  Report("ptrace_attach", attached != 0, attached != 0 ? Errno("ptrace") : "attached");
  if (attached == 0) ::ptrace(PTRACE_DETACH, child, nullptr, nullptr);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

void ProbeModules() {
  long loaded = ::syscall(SYS_init_module, "", 0, "");
  Report("init_module", loaded != 0, loaded != 0 ? Errno("init_module") : "loaded");
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  long finit = ::syscall(SYS_finit_module, fd, "", 0);
  Report("finit_module", finit != 0, finit != 0 ? Errno("finit_module") : "loaded");
  if (fd >= 0) ::close(fd);
}

void ProbeRootfs() {
  int fd = ::open("/escape-marker", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  Report("write_root", fd < 0, fd < 0 ? Errno("open /escape-marker") : "created");
  if (fd >= 0) ::close(fd);
  int exe = ::open("/proc/self/exe", O_WRONLY | O_CLOEXEC);
  Report("write_own_binary", exe < 0, exe < 0 ? Errno("open exe") : "opened for writing");
  if (exe >= 0) ::close(exe);
  int sysrq = ::open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
  Report("write_sysrq", sysrq < 0, sysrq < 0 ? Errno("open sysrq-trigger") : "opened");
  if (sysrq >= 0) ::close(sysrq);
  int made = ::mknod("/tmp/disk", S_IFBLK | 0600, makedev(8, 0));
  Report("mknod_block_device", made != 0, made != 0 ? Errno("mknod") : "created");
}

void ProbeNetwork() {
  std::ifstream routes("/proc/net/route");
  std::string line;
  int count = -1;  // the header line
  while (std::getline(routes, line)) ++count;
  std::ifstream routes6("/proc/net/ipv6_route");
  int count6 = 0;
  while (std::getline(routes6, line)) {
    // Only loopback (::1, on lo) may appear.
    if (line.find(" lo") == std::string::npos) ++count6;
  }
  Report("has_route", count <= 0 && count6 == 0,
         "ipv4 routes: " + std::to_string(count) +
             ", ipv6 non-loopback routes: " + std::to_string(count6));
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(9);
  ::inet_pton(AF_INET, "198.18.0.1", &target.sin_addr);
  int connected = ::connect(udp, reinterpret_cast<sockaddr*>(&target), sizeof target);
  Report("connect_198.18.0.1", connected != 0, connected != 0 ? Errno("connect") : "connected");
  ::close(udp);
  struct if_nameindex* names = ::if_nameindex();
  std::string list;
  bool only_loopback = true;
  for (auto* item = names; item && item->if_index != 0; ++item) {
    list += std::string(item->if_name) + " ";
    if (std::string(item->if_name) != "lo") only_loopback = false;
  }
  if (names) ::if_freenameindex(names);
  Report("interfaces_besides_lo", only_loopback, "interfaces: " + list);
}

// Needs CAP_NET_ADMIN in its namespace; without it the instrument cannot
// touch its interfaces or the nftables guard on them.
void ProbeInterfaceControl() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct if_nameindex* names = ::if_nameindex();
  for (auto* item = names; item && item->if_index != 0; ++item) {
    ifreq request{};
    std::strncpy(request.ifr_name, item->if_name, IFNAMSIZ - 1);
    ::ioctl(fd, SIOCGIFFLAGS, &request);
    request.ifr_flags &= ~IFF_PROMISC;
    int changed = ::ioctl(fd, SIOCSIFFLAGS, &request);
    Report(std::string("configure_interface:") + item->if_name, changed != 0,
           changed != 0 ? Errno("SIOCSIFFLAGS") : "changed flags");
  }
  if (names) ::if_freenameindex(names);
  ::close(fd);
}

int Probe(const std::vector<std::string>& paths) {
  for (const auto& path : paths) ProbePath(path);
  ProbeProcesses();
  ProbeCapabilities();
  ProbeMount();
  ProbePtrace();
  ProbeModules();
  ProbeRootfs();
  ProbeNetwork();
  ProbeInterfaceControl();
  std::printf("PROBES DONE\n");
  std::fflush(stdout);
  return 0;
}

int OpenMirror(bool bypass_qdisc) {
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  if (fd < 0) return -1;
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_protocol = htons(ETH_P_ALL);
  address.sll_ifindex = static_cast<int>(::if_nametoindex("mirror0"));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  if (bypass_qdisc) {
    int one = 1;
    ::setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  }
  return fd;
}

void IdleUntilStopped() {
  while (!g_stop) ::pause();
}

int TransmitOnce(int count) {
  unsigned char frame[64] = {};
  std::memset(frame, 0xff, 6);  // broadcast destination
  frame[6] = 0x02;
  frame[11] = 0x66;  // local source address
  frame[12] = 0x88;
  frame[13] = 0xb5;  // local experimental ethertype
  std::memcpy(frame + 14, "CUSTOS-HOSTILE", 14);
  int attempted = 0;
  int sent = 0;
  for (bool bypass : {false, true}) {
    int fd = OpenMirror(bypass);
    if (fd < 0) {
      Report(bypass ? "open_packet_bypass" : "open_packet", true, Errno("socket"));
      continue;
    }
    for (int i = 0; i < count; ++i) {
      ++attempted;
      if (::send(fd, frame, sizeof frame, 0) == static_cast<ssize_t>(sizeof frame)) ++sent;
    }
    ::close(fd);
  }
  int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(udp, SOL_SOCKET, SO_BROADCAST, &one, sizeof one);
  ::setsockopt(udp, SOL_SOCKET, SO_BINDTODEVICE, "mirror0", 8);
  sockaddr_in target{};
  target.sin_family = AF_INET;
  target.sin_port = htons(9);
  target.sin_addr.s_addr = INADDR_BROADCAST;
  int udp_sent = 0;
  for (int i = 0; i < count; ++i) {
    if (::sendto(udp, "x", 1, 0, reinterpret_cast<sockaddr*>(&target), sizeof target) == 1)
      ++udp_sent;
  }
  ::close(udp);
  std::printf("TRANSMITTED attempted=%d packet_accepted=%d udp_accepted=%d\n", attempted, sent,
              udp_sent);
  std::fflush(stdout);
  return 0;
}

// Transmits once, then again on each SIGUSR1 until stopped.
int Transmit(int count) {
  struct sigaction action {};
  action.sa_handler = OnUsr1;
  ::sigaction(SIGUSR1, &action, nullptr);
  TransmitOnce(count);
  while (!g_stop) {
    ::pause();
    if (g_again) {
      g_again = 0;
      TransmitOnce(count);
    }
  }
  return 0;
}

int Sniff() {
  int fd = OpenMirror(false);
  if (fd < 0) {
    std::perror("sniff");
    return 1;
  }
  timeval timeout{0, 100'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  long seen = 0;
  unsigned char buffer[2048];
  std::printf("SNIFFING\n");
  std::fflush(stdout);
  while (!g_stop) {
    if (::recv(fd, buffer, sizeof buffer, 0) > 0) ++seen;
    std::ofstream("/data/sniffed.tmp") << seen << "\n";
    ::rename("/data/sniffed.tmp", "/data/sniffed");
  }
  return 0;
}

int ForkBomb() {
  int forked = 0;
  int error = 0;
  for (int i = 0; i < 100000; ++i) {
    pid_t child = ::fork();
    if (child == 0) {
      ::pause();
      ::_exit(0);
    }
    if (child < 0) {
      error = errno;
      break;
    }
    ++forked;
  }
  std::printf("FORKBOMB forked=%d refused=%s\n", forked, error ? std::strerror(error) : "never");
  std::fflush(stdout);
  IdleUntilStopped();
  return 0;
}

int MemHog() {
  constexpr size_t kChunk = 16 << 20;
  size_t total = 0;
  for (;;) {
    char* chunk = static_cast<char*>(std::malloc(kChunk));
    if (chunk == nullptr) break;
    std::memset(chunk, 0x5a, kChunk);
    total += kChunk;
    std::printf("MEMHOG %zu MiB\n", total >> 20);
    std::fflush(stdout);
  }
  IdleUntilStopped();
  return 0;
}

int Idle() {
  std::ofstream("/data/marker") << "persistent-marker\n";
  std::ofstream("/tmp/marker") << "transient-marker\n";
  std::printf("IDLE ready\n");
  std::fflush(stdout);
  long ticks = 0;
  while (!g_stop) {
    std::ofstream("/data/ticks.tmp") << ++ticks << "\n";
    ::rename("/data/ticks.tmp", "/data/ticks");
    ::usleep(100'000);
  }
  return 0;
}

// The ring arrives as descriptor 3 (CUSTOS_RING_FD); every way to write it
// must fail, and with `sockets: false` no socket may be opened at all.
void AttackRing() {
  int ring = 3;
  void* writable = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ring, 0);
  Report("ring_map_writable", writable == MAP_FAILED,
         writable == MAP_FAILED ? Errno("mmap") : "mapped for writing");
  void* readable = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, ring, 0);
  int protect = readable == MAP_FAILED ? -1 : ::mprotect(readable, 4096, PROT_READ | PROT_WRITE);
  Report("ring_mprotect_writable", protect != 0,
         protect != 0 ? Errno("mprotect") : "made writable");
  int reopened = ::open("/proc/self/fd/3", O_RDWR | O_CLOEXEC);
  bool wrote = false;
  if (reopened >= 0) {
    void* again = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, reopened, 0);
    wrote = again != MAP_FAILED || ::pwrite(reopened, "x", 1, 8192) == 1;
  }
  Report("ring_reopen_and_write", !wrote,
         wrote ? "wrote through a re-opened descriptor" : Errno("write through /proc/self/fd/3"));
  Report("ring_truncate", ::ftruncate(ring, 0) != 0, Errno("ftruncate"));
  for (auto [name, family, type] : {std::tuple{"socket_unix", AF_UNIX, SOCK_STREAM},
                                    std::tuple{"socket_inet", AF_INET, SOCK_DGRAM},
                                    std::tuple{"socket_packet", AF_PACKET, SOCK_RAW},
                                    std::tuple{"socket_netlink", AF_NETLINK, SOCK_RAW}}) {
    int fd = ::socket(family, type, 0);
    Report(name, fd < 0, fd < 0 ? Errno("socket") : "opened");
  }
  int pair[2];
  int made = ::socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
  Report("socketpair", made != 0, made != 0 ? Errno("socketpair") : "opened");
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction action {};
  action.sa_handler = OnTerm;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string mode = args.empty() ? "idle" : args[0];
  if (mode == "probe") {
    std::vector<std::string> paths;
    for (size_t i = 1; i + 1 < args.size(); i += 2) {
      if (args[i] == "--path") paths.push_back(args[i + 1]);
    }
    return Probe(paths);
  }
  if (mode == "transmit") return Transmit(args.size() > 1 ? std::atoi(args[1].c_str()) : 100);
  if (mode == "sniff") return Sniff();
  if (mode == "forkbomb") return ForkBomb();
  if (mode == "memhog") return MemHog();
  if (mode == "crash") {
    ::usleep(static_cast<useconds_t>((args.size() > 1 ? std::atoi(args[1].c_str()) : 100) * 1000));
    // A real fault: as pid 1 of its namespace, a raised signal would be ignored.
    *static_cast<volatile int*>(nullptr) = 1;
  }
  if (mode == "idle") return Idle();
  if (mode == "markers" && args.size() > 1) {
    std::ofstream marker("/data/" + args[1] + "-file");
    for (int i = 0; i < 100; ++i) marker << args[1] << "-content\n";
    marker.close();
    std::printf("MARKERS ready\n");
    std::fflush(stdout);
    return Idle();
  }
  if (mode == "ring") {
    AttackRing();
    return Idle();
  }
  if (mode == "spam" && args.size() > 1) {
    // Floods its log, hoping to fill the sensor's disk.
    std::string line(1023, 'z');
    line += '\n';
    long lines = std::atol(args[1].c_str()) * 1024;
    for (long i = 0; i < lines && !g_stop; ++i) std::fwrite(line.data(), 1, line.size(), stdout);
    std::printf("SPAMMED\n");
    std::fflush(stdout);
    return Idle();
  }
  std::fprintf(stderr, "hostile: unknown mode %s\n", mode.c_str());
  return 2;
}
