// The Debian and RPM packages, as dpkg-buildpackage and rpmbuild made them
// from the release tarball (the ctest fixture lonc_packages): policy
// checkers (lintian, rpmlint), their contents, the hardening of the
// binaries, and their maintainer scripts run as dpkg and rpm run them, in a
// scratch world with a stub systemctl (tests/integration/maintscripts.sh).
#include <gtest/gtest.h>

#include <map>

#include "ops_util.hpp"

namespace lonc::test {
namespace {

#if !defined(LONC_SANITIZED_BUILD)
// Packages are made by the fixture of release builds (an ASan build is not
// one to ship).

// What maintscripts.sh printed: the systemctl and lonctl calls of each
// step, what the scripts printed, and the STATE lines printed after it.
struct ScriptRun {
    std::map<std::string, std::vector<std::string>> calls;
    std::map<std::string, std::vector<std::string>> out;
    std::map<std::string, std::vector<std::string>> state;
    bool done = false;
};

// Runs steps (a shell fragment calling `step` and `state`) with the package's
// scripts, unit and tmpfiles.d file, which the caller put into dir/scripts
// (or left in the unpacked package), dir/system and dir/tmpfiles.d.
ScriptRun run_scripts(const TempDir& dir, const std::string& steps) {
    dir.write("steps.sh", steps);
    const auto r = run("unshare --mount --propagation private sh " +
                       quote((source_dir() / "tests/integration/maintscripts.sh").string()) + " " +
                       quote(dir.path().string()) + " " + quote((dir / "steps.sh").string()));
    EXPECT_EQ(r.code, 0) << r.out;
    ScriptRun out;
    std::string step;
    for (const auto& line : lines_of(r.out)) {
        if (line.rfind("STEP ", 0) == 0) {
            step = line.substr(5);
            out.calls[step];
            out.out[step];
        } else if (line.rfind("CALL ", 0) == 0) {
            out.calls[step].push_back(line.substr(5));
        } else if (line.rfind("OUT ", 0) == 0) {
            out.out[step].push_back(line.substr(4));
        } else if (line.rfind("STATE ", 0) == 0) {
            out.state[step].push_back(line.substr(6));
        } else if (line == "DONE") {
            out.done = true;
        }
    }
    EXPECT_TRUE(out.done) << r.out;
    return out;
}

// The calls that change something: every call but the queries and
// daemon-reload.
std::vector<std::string> actions(const std::vector<std::string>& calls) {
    std::vector<std::string> out;
    for (const auto& c : calls) {
        if (c.rfind("is-active", 0) != 0 && c.rfind("is-enabled", 0) != 0 && c != "daemon-reload") {
            out.push_back(c);
        }
    }
    return out;
}

using Calls = std::vector<std::string>;

// The lines of a step's output that warn the operator.
std::vector<std::string> warnings(const ScriptRun& s, const std::string& step) {
    std::vector<std::string> out;
    for (const auto& line : s.out.at(step)) {
        if (line.find("WARNING") != std::string::npos) {
            out.push_back(line);
        }
    }
    return out;
}

// One warning, which names the command that moves lonc onto the new binary.
void expect_warning_naming_lonctl_upgrade(const ScriptRun& s, const std::string& step) {
    const auto w = warnings(s, step);
    ASSERT_EQ(w.size(), 1U) << step;
    EXPECT_NE(w[0].find("run: lonctl upgrade"), std::string::npos) << step << ": " << w[0];
}

// What the package's scripts must do, whichever package: steps named as in
// both packages' STEPS fragments below.
void expect_only_running_lonc_is_touched(const ScriptRun& s) {
    ASSERT_TRUE(s.done);
    // Installing: the account and directories, systemd rereads units, and
    // nothing is started, even when a lonc.service is already active.
    EXPECT_EQ(s.calls.at("install"), Calls{"daemon-reload"});
    EXPECT_EQ(actions(s.calls.at("install-while-active")), Calls{});
    const auto& st = s.state.at("install");
    ASSERT_EQ(st.size(), 6U);
    EXPECT_NE(st[0].find(":/nonexistent:"), std::string::npos) << st[0];
    EXPECT_EQ(st[1], "dir www:www 755 /home/httpd/perl/logs");
    EXPECT_EQ(st[2], "dir www:www 750 /home/httpd/sockets") << "an existing mode is kept";
    EXPECT_EQ(st[3], "dir www:www 755 /home/httpd/html/lon-status");
    EXPECT_EQ(st[4], "dir root:root 755 /home/httpd/lonTabs");
    EXPECT_EQ(st[5], "enabled no");
    EXPECT_EQ(s.state.at("install-again"), st) << "a second run changes nothing";

    // Upgrading: a running lonc moves onto the new binary (lonctl upgrade),
    // whether systemd runs it or loncron started it. Under systemd, an
    // upgrade that did not complete is followed by a restart; one the new
    // binary rejected is not (the old lonc runs on), and says what to run.
    EXPECT_EQ(actions(s.calls.at("upgrade-active")), Calls{"lonctl upgrade"});
    EXPECT_EQ(warnings(s, "upgrade-active"), Calls{});
    EXPECT_EQ(actions(s.calls.at("upgrade-active-incomplete")),
              (Calls{"lonctl upgrade", "restart lonc.service"}));
    EXPECT_EQ(actions(s.calls.at("upgrade-active-rejected")), Calls{"lonctl upgrade"});
    expect_warning_naming_lonctl_upgrade(s, "upgrade-active-rejected");
    // A unit still starting is waited for; one that does not finish
    // starting is left as it is, with a warning.
    EXPECT_EQ(actions(s.calls.at("upgrade-activating")), Calls{"lonctl upgrade"});
    EXPECT_EQ(warnings(s, "upgrade-activating"), Calls{});
    EXPECT_EQ(actions(s.calls.at("upgrade-still-activating")), Calls{});
    expect_warning_naming_lonctl_upgrade(s, "upgrade-still-activating");
    // No lonc runs: lonctl says so (exit 3), and nothing else happens.
    EXPECT_EQ(actions(s.calls.at("upgrade-inactive")), Calls{"lonctl upgrade"});
    EXPECT_EQ(warnings(s, "upgrade-inactive"), Calls{});
    // A lonc that loncron started is upgraded too, and never restarted.
    EXPECT_EQ(actions(s.calls.at("upgrade-loncron")), Calls{"lonctl upgrade"});
    EXPECT_EQ(warnings(s, "upgrade-loncron"), Calls{});
    EXPECT_EQ(actions(s.calls.at("upgrade-loncron-incomplete")), Calls{"lonctl upgrade"});
    expect_warning_naming_lonctl_upgrade(s, "upgrade-loncron-incomplete");
    // Removing: stop only a lonc that systemd runs.
    EXPECT_EQ(actions(s.calls.at("remove-active")), Calls{"stop lonc.service"});
    EXPECT_EQ(actions(s.calls.at("remove-inactive")), Calls{});
    // Not booted with systemd (loncron runs lonc): no systemctl at all; the
    // running lonc is upgraded.
    EXPECT_EQ(s.calls.at("upgrade-no-systemd"), Calls{"lonctl upgrade"});
    EXPECT_EQ(s.calls.at("remove-no-systemd"), Calls{});
    // The account, logs and spool stay after removal.
    EXPECT_EQ(s.state.at("removed"), st);
}

// The steps both packages go through; install, upgrade and remove are
// shell functions the caller defines with the package manager's sequence.
const char* const common_steps = R"sh(
mkdir -p /home/httpd/sockets && chmod 750 /home/httpd/sockets
step install install; state
step install-again install; state
touch "$H/active"; step install-while-active install
step upgrade-active upgrade
echo 8 >"$H/lonctl-exit"; step upgrade-active-incomplete upgrade
echo 2 >"$H/lonctl-exit"; step upgrade-active-rejected upgrade
rm "$H/lonctl-exit"
echo 3 >"$H/activating"; step upgrade-activating upgrade
echo forever >"$H/activating"; step upgrade-still-activating upgrade
rm "$H/activating"
rm "$H/active"; step upgrade-inactive upgrade
touch "$H/loncron"; step upgrade-loncron upgrade
echo 8 >"$H/lonctl-exit"; step upgrade-loncron-incomplete upgrade
rm "$H/lonctl-exit" "$H/loncron"
touch "$H/active"; step remove-active remove
rm "$H/active"; step remove-inactive remove
touch "$H/loncron"; rmdir /run/systemd/system
step upgrade-no-systemd upgrade
rm "$H/loncron"; step remove-no-systemd remove
echo STEP removed; state
mkdir /run/systemd/system
)sh";

// maintscripts.sh's WORK: the unit and tmpfiles.d file of the package
// unpacked at root.
void copy_unit_and_tmpfiles(const std::filesystem::path& root, const TempDir& dir) {
    for (const char* d : {"tmpfiles.d", "system"}) {
        std::filesystem::create_directories(dir / d);
    }
    std::filesystem::copy_file(root / "usr/lib/tmpfiles.d/lonc.conf", dir / "tmpfiles.d/lonc.conf");
    std::filesystem::copy_file(root / "usr/lib/systemd/system/lonc.service",
                               dir / "system/lonc.service");
}

// ------------------------------------------------------------ Debian

class DebPackage : public ::testing::Test {
protected:
    void SetUp() override {
        deb_ = built_package("deb");
        ASSERT_FALSE(deb_.empty());
        const auto x = run("dpkg-deb -R " + quote(deb_.string()) + " " + quote(root().string()));
        ASSERT_EQ(x.code, 0) << x.out;
    }
    // The package unpacked with its control files in DEBIAN/.
    [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }

    TempDir dir_{"lonc-deb"};
    std::filesystem::path deb_;
};

TEST_F(DebPackage, LintianReportsNoErrorsNoWarningsAndNoHardeningTags) {
    const auto r =
        run("lintian -I --fail-on error,warning --no-tag-display-limit " + quote(deb_.string()));
    EXPECT_EQ(r.code, 0) << r.out;
    for (const auto& line : lines_of(r.out)) {
        EXPECT_NE(line.rfind("E: ", 0), 0U) << line;
        EXPECT_NE(line.rfind("W: ", 0), 0U) << line;
        EXPECT_EQ(line.find("hardening"), std::string::npos) << line;
    }
}

TEST_F(DebPackage, ShipsCompressedManPagesCopyrightChangelogAndTheSettingsConffile) {
    // Man pages: exactly gzip -9n of the sources (no name, no time stamp).
    for (const char* page : {"man8/lonc.8", "man1/lonctl.1"}) {
        const auto shipped = root() / "usr/share/man" / (std::string(page) + ".gz");
        const auto src = source_dir() / "man" / std::filesystem::path(page).filename();
        const auto r =
            run("gzip -9nc " + quote(src.string()) + " | cmp - " + quote(shipped.string()));
        EXPECT_EQ(r.code, 0) << page << ": " << r.out;
        EXPECT_FALSE(std::filesystem::exists(root() / "usr/share/man" / page));
    }
    // The DEP-5 copyright file, and the changelog naming this version.
    const auto copyright = slurp(root() / "usr/share/doc/lonc/copyright");
    EXPECT_EQ(copyright.rfind("Format: https://www.debian.org/doc/packaging-manuals/"
                              "copyright-format/1.0/\n",
                              0),
              0U);
    EXPECT_NE(copyright.find("\nLicense: GPL-2+\n"), std::string::npos);
    const auto changelog =
        run("zcat " + quote((root() / "usr/share/doc/lonc/changelog.gz").string()));
    EXPECT_EQ(changelog.out.rfind("lonc (" LONC_VERSION ") ", 0), 0U) << changelog.out;

    // /etc/lonc/lonc.ini is the shipped example, and a conffile.
    EXPECT_EQ(slurp(root() / "etc/lonc/lonc.ini"), slurp(source_dir() / "conf/lonc.ini"));
    EXPECT_EQ(slurp(root() / "DEBIAN/conffiles"), "/etc/lonc/lonc.ini\n");
    // The tmpfiles.d file, the scripts.
    EXPECT_EQ(slurp(root() / "usr/lib/tmpfiles.d/lonc.conf"),
              slurp(source_dir() / "systemd/lonc.tmpfiles.conf"));
    // The scripts: ours, with what debhelper adds where #DEBHELPER# was.
    for (const char* s : {"postinst", "prerm", "postrm"}) {
        const auto src = slurp(source_dir() / "debian" / s);
        const auto token = src.find("#DEBHELPER#\n");
        ASSERT_NE(token, std::string::npos) << s;
        const auto built = slurp(root() / "DEBIAN" / s);
        EXPECT_EQ(built.rfind(src.substr(0, token), 0), 0U) << s << ":\n" << built;
        EXPECT_TRUE(built.ends_with(src.substr(token + 12))) << s << ":\n" << built;
    }

    // Everything root:root; directories 0755, the two binaries 0755, every
    // other file 0644.
    const auto list = run("dpkg-deb -c " + quote(deb_.string()));
    ASSERT_EQ(list.code, 0) << list.out;
    const std::regex entry(R"(^(\S+) (\S+)\s+\d+ \S+ \S+ \./(\S*)$)");
    int entries = 0;
    for (const auto& line : lines_of(list.out)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_match(line, m, entry)) << line;
        ++entries;
        const auto mode = m[1].str();
        const auto path = m[3].str();
        EXPECT_EQ(m[2].str(), "root/root") << line;
        if (mode[0] == 'd') {
            EXPECT_EQ(mode, "drwxr-xr-x") << line;
        } else if (path == "usr/sbin/lonc" || path == "usr/bin/lonctl") {
            EXPECT_EQ(mode, "-rwxr-xr-x") << line;
        } else {
            EXPECT_EQ(mode, "-rw-r--r--") << line;
        }
    }
    EXPECT_GT(entries, 20);
}

TEST_F(DebPackage, MaintainerScriptsUpgradeARunningLoncAndPurgeTheEnableSymlink) {
    const auto ctl = root() / "DEBIAN";
    copy_unit_and_tmpfiles(root(), dir_);
    // dpkg's sequences (Debian policy, chapter 6): install is configure with
    // no old version; upgrade is the old prerm, the old postrm, then the new
    // postinst with the old version; removal is prerm then postrm.
    const std::string steps = "C=" + quote(ctl.string()) + R"sh(
install() { sh "$C/postinst" configure ""; }
upgrade() {
    sh "$C/prerm" upgrade 0.1.1 && sh "$C/postrm" upgrade 0.1.1 &&
        sh "$C/postinst" configure 0.1.0
}
remove() { sh "$C/prerm" remove && sh "$C/postrm" remove && sh "$C/postrm" purge; }
)sh" + common_steps + R"sh(
step reinstall install
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -s /usr/lib/systemd/system/lonc.service /etc/systemd/system/multi-user.target.wants/
echo STEP enabled; state
step purge remove
echo STEP purged; state
)sh";
    const auto s = run_scripts(dir_, steps);
    expect_only_running_lonc_is_touched(s);
    // Purge removes the symlink `systemctl enable lonc` made (the postinst
    // recorded it with deb-systemd-helper), and nothing else.
    EXPECT_EQ(s.state.at("enabled").back(), "enabled yes");
    auto purged = s.state.at("enabled");
    purged.back() = "enabled no";
    EXPECT_EQ(s.state.at("purged"), purged);
}

// ------------------------------------------------------------ RPM

class RpmPackage : public ::testing::Test {
protected:
    void SetUp() override {
        rpm_ = built_package("rpm");
        ASSERT_FALSE(rpm_.empty());
        std::filesystem::create_directories(root());
        const auto x = run("cd " + quote(root().string()) + " && rpm2cpio " + quote(rpm_.string()) +
                           " | cpio -idm --quiet");
        ASSERT_EQ(x.code, 0) << x.out;
    }
    [[nodiscard]] std::filesystem::path root() const { return dir_ / "root"; }
    // rpm -qp --qf FORMAT on the package.
    [[nodiscard]] std::string query(const std::string& format) const {
        const auto r = run("rpm -qp --qf " + quote(format) + " " + quote(rpm_.string()));
        EXPECT_EQ(r.code, 0) << r.out;
        return r.out;
    }

    TempDir dir_{"lonc-rpm"};
    std::filesystem::path rpm_;
};

TEST_F(RpmPackage, RpmlintReportsNoErrors) {
    // With the RHEL-family settings Debian's rpmlint lacks (the file says
    // which and why).
    const auto r =
        run("rpmlint -c " + quote((source_dir() / "packaging/rpm/rpmlint.toml").string()) + " " +
            quote(rpm_.string()));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"((\d+) errors?, (\d+) warnings?)")))
        << r.out;
    EXPECT_EQ(m[1].str(), "0") << r.out;
    for (const auto& line : lines_of(r.out)) {
        EXPECT_EQ(line.find(" E: "), std::string::npos) << line;
    }
}

TEST_F(RpmPackage, ShipsBinariesUnitManPagesTmpfilesAndTheSettingsFileAsConfig) {
    EXPECT_EQ(query("%{NAME} %{VERSION}"), "lonc " LONC_VERSION);
    const auto files = lines_of(query("[%{FILENAMES} %{FILEFLAGS:fflags}\\n]"));
    const std::set<std::string> listed(files.begin(), files.end());
    for (const char* f :
         {"/usr/sbin/lonc ", "/usr/bin/lonctl ", "/usr/lib/systemd/system/lonc.service ",
          "/usr/lib/tmpfiles.d/lonc.conf ", "/usr/share/man/man8/lonc.8.gz d",
          "/usr/share/man/man1/lonctl.1.gz d", "/usr/share/doc/lonc/examples/access.conf ",
          "/usr/share/doc/lonc/examples/hosts.tab ", "/usr/share/doc/lonc/examples/lonc.ini ",
          "/usr/share/licenses/lonc/LICENSE l", "/etc/lonc/lonc.ini cn"}) {
        const std::string want(f);
        EXPECT_TRUE(listed.count(want) == 1 || listed.count(want + "d") == 1)
            << want << " not in:\n"
            << query("[%{FILENAMES} %{FILEFLAGS:fflags}\\n]");
    }
    // Directories that belong to the system are not claimed.
    for (const char* d :
         {"/usr/lib/systemd ", "/usr/lib/systemd/system ", "/usr/lib/tmpfiles.d ",
          "/usr/share/man/man8 ", "/etc ", "/usr/sbin ", "/usr/share/doc/lonc/copyright "}) {
        EXPECT_EQ(listed.count(d), 0U) << d;
    }
    EXPECT_NE(slurp(root() / "usr/lib/systemd/system/lonc.service")
                  .find("\nExecStart=/usr/sbin/lonc --foreground\n"),
              std::string::npos);
    EXPECT_EQ(slurp(root() / "etc/lonc/lonc.ini"), slurp(source_dir() / "conf/lonc.ini"));
    // Installs only where the useradd of its pre-install scriptlet exists.
    EXPECT_NE(query("[%{REQUIREFLAGS:deptype} %{REQUIRENAME}\\n]").find("pre shadow-utils"),
              std::string::npos);
}

TEST_F(RpmPackage, ScriptletsUpgradeARunningLonc) {
    const auto scripts = dir_ / "scripts";
    for (const char* tag : {"PREIN", "POSTIN", "PREUN", "POSTUN", "POSTTRANS"}) {
        dir_.write(std::string("scripts/") + tag, query(std::string("%{") + tag + "}"));
        EXPECT_NE(slurp(scripts / tag).find("exit 0"), std::string::npos) << tag;
    }
    copy_unit_and_tmpfiles(root(), dir_);
    // rpm's sequences: install is pre 1, post 1, posttrans; upgrade is the
    // new pre 2 and post 2, the old preun 1 and postun 1, the new
    // posttrans; removal is preun 0, postun 0.
    const std::string steps = "S=" + quote(scripts.string()) + R"sh(
install() { sh "$S/PREIN" 1 && sh "$S/POSTIN" 1 && sh "$S/POSTTRANS" 0; }
upgrade() {
    sh "$S/PREIN" 2 && sh "$S/POSTIN" 2 && sh "$S/PREUN" 1 && sh "$S/POSTUN" 1 &&
        sh "$S/POSTTRANS" 0
}
remove() { sh "$S/PREUN" 0 && sh "$S/POSTUN" 0; }
)sh" + common_steps + R"sh(
mkdir -p /var/lib/rpm-state && touch /var/lib/rpm-state/lonc-upgrade
step stale-note install
)sh";
    const auto s = run_scripts(dir_, steps);
    expect_only_running_lonc_is_touched(s);
    // A note left by an interrupted upgrade starts nothing: lonctl finds no
    // lonc to upgrade.
    EXPECT_EQ(actions(s.calls.at("stale-note")), Calls{"lonctl upgrade"});
    EXPECT_EQ(warnings(s, "stale-note"), Calls{});
}

// ------------------------------------------------------------ hardening
#if defined(LONC_HARDENED_BUILD)

// What lintian's hardening tags look for, on the binaries themselves:
// fortified libc calls, the stack protector, PIE, full RELRO (relro and
// bind-now).
TEST(Hardening, LoncAndLonctlAreFortifiedPieFullRelro) {
    for (const auto& bin : {lonc_binary(), std::string(LONCTL_PATH)}) {
        const auto dyn = run("readelf -d " + quote(bin));
        EXPECT_NE(dyn.out.find("BIND_NOW"), std::string::npos) << bin;
        EXPECT_NE(dyn.out.find("PIE"), std::string::npos) << bin << ": not PIE";
        const auto seg = run("readelf -lW " + quote(bin));
        EXPECT_NE(seg.out.find("GNU_RELRO"), std::string::npos) << bin;
        const auto syms = run("readelf --dyn-syms -W " + quote(bin));
        EXPECT_TRUE(std::regex_search(syms.out, std::regex(R"(__\w+_chk@)"))) << bin;
        EXPECT_NE(syms.out.find("__stack_chk_fail"), std::string::npos) << bin;
    }
}
#endif
#endif

} // namespace
} // namespace lonc::test
