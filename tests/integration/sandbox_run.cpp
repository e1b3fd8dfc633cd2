// sandbox-run: runs a program inside an emulation of the systemd unit's
// sandbox, for tests on machines where PID 1 is not systemd.
//
//   sandbox-run --syscalls FILE [--ro DIR]... [--rw DIR]... [--user NAME]
//               [--nofile N] -- PROGRAM [ARG]...
//
// As systemd would for lonc.service, in a private mount namespace:
//   PrivateTmp=, ProtectHome=tmpfs  empty tmpfs on /tmp (writable) and /home
//   BindReadOnlyPaths=/BindPaths=   each --ro/--rw DIR is visible at its
//                                   own path again
//   ProtectSystem=strict            everything read-only except the --rw
//                                   directories and /dev, /proc, /sys
//   ReadWritePaths=                 the --rw directories
//   LimitNOFILE=                    soft = hard = N (at most the current hard)
//   User=                           switch to NAME (and its groups) first
//   NoNewPrivileges=yes
//   SystemCallFilter= + SystemCallArchitectures=native
//                                   only the syscalls named in FILE (one per
//                                   line), native ABI; anything else KILLS
//                                   the process (systemd answers EPERM; a
//                                   kill makes a forbidden call visible)
//   RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
//   MemoryDenyWriteExecute=yes
// Needs root (for the mounts and the user switch).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <linux/mount.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <string>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
    (void)std::fprintf(stderr, "sandbox-run: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(125);
}

void check(int rc, const std::string& what) {
    if (rc < 0) {
        if (rc != -1) {
            errno = -rc;
        }
        die(what);
    }
}

void mkdirs(const std::string& path) {
    for (std::size_t i = 1; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            const auto part = path.substr(0, i);
            if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
                die("mkdir " + part);
            }
        }
    }
}

void set_readonly(const char* path, bool ro, bool recursive) {
    mount_attr attr{};
    if (ro) {
        attr.attr_set = MOUNT_ATTR_RDONLY;
    } else {
        attr.attr_clr = MOUNT_ATTR_RDONLY;
    }
    check(::mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0U, &attr, sizeof attr),
          std::string("mount_setattr ") + path);
}

struct Bind {
    std::string path;
    int fd;
    bool rw;
};

void load_filter(const std::string& file) {
    scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == nullptr) {
        die("seccomp_init");
    }
    std::ifstream in(file);
    if (!in) {
        die("cannot read " + file);
    }
    std::string name;
    int unknown = 0;
    while (std::getline(in, name)) {
        if (name.empty() || name == "socket" || name == "mmap" || name == "mprotect" ||
            name == "pkey_mprotect") {
            continue; // allowed below, with conditions
        }
        const int nr = ::seccomp_syscall_resolve_name(name.c_str());
        if (nr == __NR_SCMP_ERROR) {
            ++unknown; // another architecture's name
            continue;
        }
        check(::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), "allow " + name);
    }
    // RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6.
    for (const int family : {AF_UNIX, AF_INET, AF_INET6}) {
        check(::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                                 SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(family))),
              "allow socket");
    }
    // MemoryDenyWriteExecute=yes: never PROT_WRITE and PROT_EXEC together.
    for (const int sys : {SCMP_SYS(mmap), SCMP_SYS(mprotect), SCMP_SYS(pkey_mprotect)}) {
        check(::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sys, 1,
                                 SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
              "allow mmap/mprotect");
        check(::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sys, 1,
                                 SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_WRITE, 0)),
              "allow mmap/mprotect");
    }
    check(::seccomp_load(ctx), "seccomp_load");
    ::seccomp_release(ctx);
}

} // namespace

int main(int argc, char** argv) {
    std::string syscalls;
    std::string user;
    rlim_t nofile = 65536;
    std::vector<Bind> binds;
    int i = 1;
    for (; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (i + 1 >= argc) {
            (void)std::fprintf(stderr, "sandbox-run: %s needs a value\n", a.c_str());
            return 125;
        }
        const std::string v = argv[++i];
        if (a == "--syscalls") {
            syscalls = v;
        } else if (a == "--user") {
            user = v;
        } else if (a == "--nofile") {
            nofile = std::strtoul(v.c_str(), nullptr, 10);
        } else if (a == "--ro" || a == "--rw") {
            binds.push_back({v, -1, a == "--rw"});
        } else {
            (void)std::fprintf(stderr, "sandbox-run: unknown option %s\n", a.c_str());
            return 125;
        }
    }
    if (i >= argc || syscalls.empty()) {
        (void)std::fprintf(stderr, "usage: sandbox-run --syscalls FILE [--ro DIR] [--rw DIR] "
                                   "[--user NAME] [--nofile N] -- PROGRAM [ARG]...\n");
        return 125;
    }

    check(::unshare(CLONE_NEWNS), "unshare");
    check(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "make / private");
    // Held open (in this namespace) across the tmpfs mounts that hide them.
    for (auto& b : binds) {
        b.fd = ::open(b.path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (b.fd < 0) {
            die("open " + b.path);
        }
    }
    check(::mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"), "tmpfs on /tmp");
    check(::mount("tmpfs", "/home", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"), "tmpfs on /home");
    // Parents before children: --ro DIR, then --rw DIR/sub inside it.
    for (const auto& b : binds) {
        mkdirs(b.path);
        const auto from = "/proc/self/fd/" + std::to_string(b.fd);
        check(::mount(from.c_str(), b.path.c_str(), nullptr, MS_BIND | MS_REC, nullptr),
              "bind " + b.path);
        ::close(b.fd);
    }
    set_readonly("/", true, true);
    for (const char* api : {"/dev", "/proc", "/sys"}) {
        mount_attr attr{};
        attr.attr_clr = MOUNT_ATTR_RDONLY;
        (void)::mount_setattr(AT_FDCWD, api, AT_RECURSIVE, &attr, sizeof attr);
    }
    set_readonly("/tmp", false, false); // PrivateTmp= is writable
    for (const auto& b : binds) {
        if (b.rw) {
            set_readonly(b.path.c_str(), false, false);
        }
    }

    rlimit rl{};
    check(::getrlimit(RLIMIT_NOFILE, &rl), "getrlimit");
    rl.rlim_cur = rl.rlim_max = std::min(nofile, rl.rlim_max);
    check(::setrlimit(RLIMIT_NOFILE, &rl), "setrlimit");

    if (!user.empty()) {
        const passwd* pw = ::getpwnam(user.c_str());
        if (pw == nullptr) {
            errno = ENOENT;
            die("user " + user);
        }
        check(::initgroups(user.c_str(), pw->pw_gid), "initgroups");
        check(::setgid(pw->pw_gid), "setgid");
        check(::setuid(pw->pw_uid), "setuid");
    }
    check(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs");
    load_filter(syscalls);
    ::execv(argv[i], argv + i);
    die(std::string("exec ") + argv[i]);
}
