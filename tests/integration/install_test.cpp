// What ships: the man pages, the commented examples, `cmake --install` and
// the Debian package (built by dpkg-buildpackage, unpacked with dpkg -x).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sys/stat.h>

#include "ops_util.hpp"

namespace lonc::test {
namespace {

using namespace std::chrono_literals;

std::string lonctl_binary() {
    return LONCTL_PATH;
}

// An access.conf whose paths are all inside dir, with hosts.tab from the
// shipped example (its first host is this server).
std::filesystem::path example_config(const TempDir& dir) {
    auto conf = slurp(source_dir() / "conf/access.conf");
    const auto d = dir.path().string();
    conf = replaced(conf, "/home/httpd/lonTabs", d + "/tabs");
    conf = replaced(conf, "/home/httpd/perl", d + "/perl");
    conf = replaced(conf, "/home/httpd/sockets", d + "/sockets");
    conf = replaced(conf, "/home/httpd/html", d + "/html");
    dir.write("access.conf", conf);
    dir.write("tabs/hosts.tab", slurp(source_dir() / "conf/hosts.tab"));
    // The directories lonc writes in, as the package's tmpfiles.d makes them
    // (lonc -t tries them as www).
    for (const char* sub : {"perl/logs", "sockets", "sockets/delayed", "html/lon-status"}) {
        (void)dir.make_dir(sub, "www");
    }
    return dir / "access.conf";
}

// --------------------------------------------------------------- man pages

// One section of a roff page: from its ".SH NAME" line to the next ".SH".
std::string man_section(const std::string& page, const std::string& name) {
    const auto at = page.find("\n.SH " + name + "\n");
    if (at == std::string::npos) {
        return {};
    }
    const auto end = page.find("\n.SH ", at + 1);
    return page.substr(at + 1, end == std::string::npos ? std::string::npos : end - at - 1);
}

// roff's "\-" is a plain "-" on the rendered page.
std::string unroff(std::string text) {
    for (auto at = text.find("\\-"); at != std::string::npos; at = text.find("\\-", at)) {
        text.erase(at, 1);
    }
    return text;
}

// The tag line of every .TP (the term it describes), with how deep it sits
// in .RS/.RE (0: a top-level entry; 1: an entry under the one before).
struct ManTag {
    int depth = 0;
    std::string text;
};
std::vector<ManTag> man_tags(const std::string& section) {
    std::vector<ManTag> out;
    int depth = 0;
    bool tag_next = false;
    for (const auto& line : lines_of(section)) {
        if (tag_next) {
            out.push_back({depth, unroff(line)});
            tag_next = false;
        } else if (line.rfind(".RS", 0) == 0) {
            ++depth;
        } else if (line.rfind(".RE", 0) == 0) {
            --depth;
        } else if (line == ".TP" || line.rfind(".TP ", 0) == 0) {
            tag_next = true;
        }
    }
    return out;
}

// Every --name in a text.
std::set<std::string> long_options_in(const std::string& text) {
    std::set<std::string> out;
    const std::regex re(R"(--([a-z][a-z0-9-]*))");
    for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
        out.insert((*it)[1].str());
    }
    return out;
}

// The term a tag names: ".BI send \" host request\"" is "send",
// ".BR \"spool list\" ..." is "spool list".
std::string tag_term(const std::string& tag) {
    const auto space = tag.find(' ');
    if (space == std::string::npos) {
        return {};
    }
    const auto rest = tag.substr(space + 1);
    if (!rest.empty() && rest[0] == '"') {
        return rest.substr(1, rest.find('"', 1) - 1);
    }
    return rest.substr(0, rest.find(' '));
}

// The subcommands a CLI11 --help lists.
std::set<std::string> subcommands(const std::string& help) {
    std::set<std::string> out;
    const auto at = help.find("Subcommands:");
    if (at == std::string::npos) {
        return out;
    }
    const std::regex sub_re(R"(^  ([a-z][a-z-]*)\s)");
    for (const auto& line : lines_of(help.substr(at))) {
        std::smatch m;
        if (std::regex_search(line, m, sub_re)) {
            out.insert(m[1].str());
        }
    }
    return out;
}

// Options are documented once, in the man pages, so the page must list
// exactly what the built program accepts: nothing missing, nothing stale.
TEST(ManPages, LoncPageListsExactlyTheOptionsOfHelp) {
    const auto help = run(quote(lonc_binary()) + " --help");
    ASSERT_EQ(help.code, 0);
    const auto in_help = long_options(help.out);
    ASSERT_GT(in_help.size(), 20U) << help.out;
    const auto section = man_section(slurp(source_dir() / "man/lonc.8"), "OPTIONS");
    ASSERT_FALSE(section.empty());
    std::set<std::string> in_page;
    for (const auto& tag : man_tags(section)) {
        in_page.merge(long_options_in(tag.text));
    }
    for (const auto& o : in_help) {
        EXPECT_EQ(in_page.count(o), 1U) << "lonc.8 OPTIONS lacks --" << o;
    }
    for (const auto& o : in_page) {
        EXPECT_EQ(in_help.count(o), 1U) << "lonc.8 OPTIONS has --" << o << ", lonc --help not";
    }
}

TEST(ManPages, LonctlPageListsExactlyTheCommandsAndOptionsOfHelp) {
    const auto lonctl = quote(lonctl_binary());
    const auto help = run(lonctl + " --help");
    ASSERT_EQ(help.code, 0) << help.out;
    const auto global = long_options(help.out);
    // Every command (a subcommand's subcommands as "spool list") and the
    // options of each, from the built lonctl.
    const auto help_of = [&](const std::string& command) {
        return run(lonctl + " " + command + " --help");
    };
    std::map<std::string, std::set<std::string>> in_help;
    for (const auto& sub : subcommands(help.out)) {
        const auto sub_help = help_of(sub);
        ASSERT_EQ(sub_help.code, 0) << sub << ": " << sub_help.out;
        std::vector<std::string> commands;
        for (const auto& leaf : subcommands(sub_help.out)) {
            commands.push_back(std::string(sub).append(" ").append(leaf));
        }
        if (commands.empty()) {
            commands.push_back(sub);
        }
        for (const auto& command : commands) {
            const auto h = command == sub ? sub_help : help_of(command);
            ASSERT_EQ(h.code, 0) << command << ": " << h.out;
            auto& opts = in_help[command];
            for (const auto& o : long_options(h.out)) {
                if (o != "help" && global.count(o) == 0) {
                    opts.insert(o);
                }
            }
        }
    }
    ASSERT_GE(in_help.size(), 8U) << help.out;

    const auto page = slurp(source_dir() / "man/lonctl.1");
    std::set<std::string> page_global;
    for (const auto& tag : man_tags(man_section(page, "OPTIONS"))) {
        page_global.merge(long_options_in(tag.text));
    }
    EXPECT_EQ(page_global, global) << "lonctl.1 OPTIONS against lonctl --help";

    std::map<std::string, std::set<std::string>> in_page;
    std::string command;
    for (const auto& tag : man_tags(man_section(page, "COMMANDS"))) {
        if (tag.depth == 0) {
            command = tag_term(tag.text);
            in_page[command];
        } else {
            in_page[command].merge(long_options_in(tag.text));
        }
    }
    EXPECT_EQ(in_page, in_help) << "lonctl.1 COMMANDS against lonctl's --help";
}

TEST(ManPages, RenderWithoutWarnings) {
    for (const char* page : {"man/lonc.8", "man/lonctl.1"}) {
        const auto path = quote((source_dir() / page).string());
        const auto groff = run("groff -t -man -Tutf8 -ww " + path + " >/dev/null");
        EXPECT_EQ(groff.code, 0) << page << ": " << groff.out;
        EXPECT_EQ(groff.out, "") << page << ": groff warned";
        const auto man = run("MANWIDTH=80 man --warnings -l " + path + " >/dev/null");
        EXPECT_EQ(man.code, 0) << page << ": " << man.out;
        EXPECT_EQ(man.out, "") << page << ": man warned";
    }
}

TEST(ManPages, LoncPageDocumentsEverySignalAndExitCode) {
    const auto page = slurp(source_dir() / "man/lonc.8");
    for (const char* section :
         {".SH SYNOPSIS", ".SH OPTIONS", ".SH FILES", ".SH SIGNALS", ".SH EXIT STATUS",
          ".SH STATUS FILES", ".SH DIFFERENCES FROM THE ORIGINAL", ".SH SEE ALSO"}) {
        EXPECT_NE(page.find(section), std::string::npos) << section;
    }
    for (const char* sig : {".BR INT \", \" TERM", ".B HUP", ".B USR1", ".B CHLD"}) {
        EXPECT_NE(page.find(std::string("\n") + sig + "\n"), std::string::npos) << sig;
    }
    for (int code = 0; code <= 4; ++code) {
        EXPECT_NE(page.find(".TP\n.B " + std::to_string(code) + "\n"), std::string::npos) << code;
    }
}

TEST(ManPages, LonctlPageDocumentsEverySubcommand) {
    const auto page = slurp(source_dir() / "man/lonctl.1");
    for (const char* cmd :
         {".BI send \" host request\"", ".B status", ".B check", ".BI reconnect \" host\"",
          ".BR \"spool list\"", ".BR \"spool retry\"", ".BR \"spool purge\\-bad\""}) {
        EXPECT_NE(page.find(std::string("\n") + cmd), std::string::npos) << cmd;
    }
    // And whatever the built lonctl has (its --help lists its subcommands).
    const auto help = run(quote(lonctl_binary()) + " --help");
    const auto at = help.out.find("Subcommands:");
    ASSERT_NE(at, std::string::npos) << help.out;
    const std::regex sub_re(R"(^  ([a-z][a-z-]*)\s)");
    for (const auto& line : lines_of(help.out.substr(at))) {
        std::smatch m;
        if (std::regex_search(line, m, sub_re)) {
            EXPECT_NE(page.find(m[1].str()), std::string::npos) << "lonctl.1 lacks " << m[1];
        }
    }
}

// -------------------------------------------------------- config examples

TEST(Examples, ShippedAccessConfAndHostsTabPassCheckConfig) {
    TempDir dir("lonc-ex");
    const auto conf = example_config(dir);
    const auto r = run(quote(lonc_binary()) + " --check-config -c " + quote(conf.string()));
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("host id:   msul1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("peers:     3"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("problems:  none"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("(this host)"), std::string::npos) << r.out;
}

// The shipped lonc.ini sets nothing (it is installed as /etc/lonc/lonc.ini),
// points to lonc(8) for the options, and its commented examples are real:
// each names an option of --help, shows its default where --help has one,
// and all of them uncommented still make a good configuration.
TEST(Examples, ShippedSettingsIniIsValidAndItsExamplesAreRealOptions) {
    TempDir dir("lonc-ini");
    const auto conf = example_config(dir);
    // Copied where www can read it, as the package installs it (the source
    // tree may sit in a directory only root can enter; -t tries as www).
    dir.write("lonc.ini", slurp(source_dir() / "conf/lonc.ini"));
    const auto ini = dir / "lonc.ini";
    const auto check = [&](const std::filesystem::path& settings) {
        return run(quote(lonc_binary()) + " --settings " + quote(settings.string()) +
                   " --check-config -c " + quote(conf.string()));
    };
    const auto r = check(ini);
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("configuration OK"), std::string::npos) << r.out;
    const auto text = slurp(ini);
    EXPECT_NE(text.find("lonc(8)"), std::string::npos);

    const auto help = run(quote(lonc_binary()) + " --help");
    std::map<std::string, std::string> defaults;
    // "--pipeline UINT:UINT in [1 - 1024]=1": the type, then = and the default.
    const std::regex opt_re(R"(^\s+(?:-\w,)?--([a-z][a-z0-9-]*)(?: [A-Z][^=]*=(\S+))?)");
    for (const auto& line : lines_of(help.out)) {
        std::smatch m;
        if (std::regex_search(line, m, opt_re)) {
            defaults[m[1].str()] = m[2].matched ? m[2].str() : "";
        }
    }
    const std::regex example_re(R"(^# ([a-z][a-z0-9-]*) = (.*)$)");
    std::string uncommented;
    int examples = 0;
    for (const auto& line : lines_of(text)) {
        EXPECT_TRUE(line.empty() || line[0] == '#') << "lonc.ini sets something: " << line;
        std::smatch m;
        if (std::regex_match(line, m, example_re)) {
            ++examples;
            const auto name = m[1].str();
            ASSERT_EQ(defaults.count(name), 1U) << "lonc.ini example of no option: " << name;
            if (!defaults[name].empty()) {
                EXPECT_EQ(m[2].str(), defaults[name]) << name;
            }
            uncommented += line.substr(2) + "\n";
        }
    }
    EXPECT_GE(examples, 3);
    dir.write("examples.ini", uncommented);
    const auto all = check(dir / "examples.ini");
    EXPECT_EQ(all.code, 0) << uncommented << all.out;
}

TEST(Examples, SettingsFileWithAnUnknownKeyIsRefused) {
    TempDir dir("lonc-ini");
    const auto conf = example_config(dir);
    dir.write("bad.ini", "request-timout = 120\n");
    const auto r = run(quote(lonc_binary()) + " --settings " + quote((dir / "bad.ini").string()) +
                       " --check-config -c " + quote(conf.string()));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find((dir / "bad.ini").string() +
                         ":1: unknown setting 'request-timout'; did you mean 'request-timeout'?"),
              std::string::npos)
        << r.out;
}

TEST(Examples, SettingsFileProblemsComeWithTheirLineAndTheRangeInWords) {
    TempDir dir("lonc-ini");
    const auto conf = example_config(dir);
    dir.write("bad.ini", "# lonc settings\nrequest-timeout = -1\nretry-min = x\n"
                         "zzzz-qqqq = 1\nlog-level = info\n");
    const auto r = run(quote(lonc_binary()) + " --settings " + quote((dir / "bad.ini").string()) +
                       " --check-config -c " + quote(conf.string()));
    EXPECT_EQ(r.code, 2) << r.out;
    const auto f = (dir / "bad.ini").string();
    const auto at2 = r.out.find(f + ":2: ");
    const auto at3 = r.out.find(f + ":3: ");
    const auto at4 = r.out.find(f + ":4: unknown setting 'zzzz-qqqq' (lonc --help lists them)");
    ASSERT_NE(at2, std::string::npos) << r.out;
    ASSERT_NE(at3, std::string::npos) << r.out;
    ASSERT_NE(at4, std::string::npos) << r.out;
    EXPECT_LT(at2, at3) << "in line order";
    EXPECT_LT(at3, at4) << "in line order";
    EXPECT_NE(r.out.find("must be more than 0, not -1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("'x' is not a number"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("179769"), std::string::npos) << "a range of 300 digits: " << r.out;
    EXPECT_EQ(r.out.find(f + ":5"), std::string::npos) << "a good line is no problem: " << r.out;
}

// /etc/lonc/lonc.ini (the package's conffile) is read when it exists and
// no --settings is given, by lonc and by lonctl (for the access.conf it
// names). Tried in a private mount namespace with a scratch /etc/lonc.
TEST(Examples, EtcLoncIniIsReadByDefaultAndAnExplicitSettingsReplacesIt) {
    TempDir dir("lonc-ini");
    const auto conf = example_config(dir);
    (void)dir.make_dir("etc");
    dir.write("other.ini", "request-timeout = 5\n");
    std::error_code ec;
    const bool made = std::filesystem::create_directory("/etc/lonc", ec);
    auto in_ns = [&](const std::string& cmd) {
        return run("unshare --mount --propagation private sh -c " +
                   quote("mount --bind " + quote((dir / "etc").string()) + " /etc/lonc && " + cmd));
    };
    const auto lonc = quote(lonc_binary()) + " -t -c " + quote(conf.string());

    // The shipped file with a misspelt key: it shows that the file was read,
    // and it is one problem, at its line (each line was once checked with
    // the default file read again, so every line of it was a problem).
    const auto shipped = slurp(source_dir() / "conf/lonc.ini");
    dir.write("etc/lonc.ini", shipped + "request-timout = 5\n");
    const auto by_default = in_ns(lonc);
    EXPECT_EQ(by_default.code, 2) << by_default.out;
    std::vector<std::string> problems;
    for (const auto& line : lines_of(by_default.out)) {
        if (line.find("lonc: ") != std::string::npos) {
            problems.push_back(line);
        }
    }
    ASSERT_EQ(problems.size(), 1U) << by_default.out;
    EXPECT_NE(
        problems[0].find("/etc/lonc/lonc.ini:" + std::to_string(lines_of(shipped).size() + 1) +
                         ": unknown setting 'request-timout'; did you mean 'request-timeout'?"),
        std::string::npos)
        << by_default.out;
    const auto replaced_by = in_ns(lonc + " --settings " + quote((dir / "other.ini").string()));
    EXPECT_EQ(replaced_by.code, 0) << replaced_by.out;
    const auto none = in_ns(lonc + " --settings ''");
    EXPECT_EQ(none.code, 0) << none.out;

    // lonctl without -c finds access.conf where lonc.ini's config = says.
    dir.write("etc/lonc.ini", "config = " + conf.string() + "\n");
    const auto ctl = in_ns(quote(lonctl_binary()) + " spool list");
    EXPECT_EQ(ctl.code, 0) << ctl.out;
    const auto ctl_none = in_ns(quote(lonctl_binary()) + " --settings '' spool list");
    EXPECT_NE(ctl_none.code, 0) << "the default access.conf is not this one: " << ctl_none.out;
    if (made) {
        std::filesystem::remove("/etc/lonc", ec);
    }
}

TEST(Examples, PrintSettingsSaysWhereEachValueCameFrom) {
    TempDir dir("lonc-ini");
    const auto conf = example_config(dir);
    dir.write("my.ini", "request-timeout = 42\npipeline = 3\n");
    const auto r = run(quote(lonc_binary()) + " -T -c " + quote(conf.string()) + " --settings " +
                       quote((dir / "my.ini").string()) + " --pipeline 5");
    EXPECT_EQ(r.code, 0) << r.out;
    const auto ini = (dir / "my.ini").string();
    EXPECT_NE(r.out.find("request-timeout = 42  # " + ini + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("pipeline = 5  # command line\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("config = " + conf.string() + "  # command line\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("max-queue = 10000  # default\n"), std::string::npos) << r.out;
    // What it prints is a settings file lonc takes as it is.
    dir.write("printed.ini", r.out);
    const auto again =
        run(quote(lonc_binary()) + " -t --settings " + quote((dir / "printed.ini").string()));
    EXPECT_EQ(again.code, 0) << r.out << again.out;
}

// ------------------------------------------------------------ installation

// readme: the README's name there (the .deb has it compressed, as
// dh_compress does with documentation).
void expect_installed_tree(const std::filesystem::path& prefix,
                           const std::string& readme = "README.md") {
    for (const char* f :
         {"sbin/lonc", "bin/lonctl", "lib/systemd/system/lonc.service", "lib/tmpfiles.d/lonc.conf",
          "share/man/man8/lonc.8.gz", "share/man/man1/lonctl.1.gz",
          "share/doc/lonc/examples/access.conf", "share/doc/lonc/examples/hosts.tab",
          "share/doc/lonc/examples/lonc.ini", "share/doc/lonc/examples/logrotate.d/lonc"}) {
        EXPECT_TRUE(std::filesystem::is_regular_file(prefix / f)) << prefix / f;
    }
    EXPECT_TRUE(std::filesystem::is_regular_file(prefix / "share/doc/lonc" / readme))
        << prefix / "share/doc/lonc" / readme;
    for (const char* f : {"sbin/lonc", "bin/lonctl"}) {
        EXPECT_EQ(::access((prefix / f).c_str(), X_OK), 0) << f;
    }
}

TEST(Install, CmakeInstallPutsEveryFileInPlaceAndTheUnitNamesTheInstalledBinary) {
    TempDir dir("lonc-inst");
    const auto prefix = dir / "prefix";
    const auto r = run("cmake --install " + quote(build_dir().string()) + " --prefix " +
                       quote(prefix.string()));
    ASSERT_EQ(r.code, 0) << r.out;
    expect_installed_tree(prefix);
    EXPECT_TRUE(std::filesystem::is_regular_file(prefix / "share/doc/lonc/LICENSE"));
    // The settings file: <prefix>/etc, as the prefix is not /usr.
    EXPECT_EQ(slurp(prefix / "etc/lonc/lonc.ini"), slurp(source_dir() / "conf/lonc.ini"));
    const auto unit = slurp(prefix / "lib/systemd/system/lonc.service");
    EXPECT_NE(unit.find("\nExecStart=" + (prefix / "sbin/lonc").string() + " --foreground\n"),
              std::string::npos)
        << unit;
    // The installed unit verifies, its man pages included.
    const auto v =
        run("MANPATH=" + quote((prefix / "share/man").string()) + " systemd-analyze verify " +
            quote((prefix / "lib/systemd/system/lonc.service").string()));
    EXPECT_EQ(v.code, 0) << v.out;
    EXPECT_EQ(v.out, "");
    const auto ver = run(quote((prefix / "sbin/lonc").string()) + " --version");
    EXPECT_EQ(ver.out, "lonc " LONC_VERSION "\n");
}

#if !defined(LONC_SANITIZED_BUILD)
// The package is built by the fixture of non-sanitizer builds (an ASan
// build is not one to ship; this test is compiled only into those).
TEST(Package, DebDependsOnWhatLoncLinksCreatesWwwAndRunsFromAScratchRoot) {
    TempDir dir("lonc-deb");
    const auto deb = built_package("deb");
    ASSERT_FALSE(deb.empty());
    EXPECT_EQ(deb.filename().string().rfind("lonc_" LONC_VERSION "_", 0), 0U) << deb;

    // Control: the package name, Depends and a postinst.
    const auto info = run("dpkg-deb -I " + quote(deb.string()));
    ASSERT_EQ(info.code, 0) << info.out;
    EXPECT_NE(info.out.find("\n Package: lonc\n"), std::string::npos) << info.out;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(info.out, m, std::regex(R"(\n Depends: ([^\n]*)\n)")))
        << info.out;
    const auto depends = m[1].str();
    for (const char* pkg : {"libcrypto++8", "libspdlog1.10", "libfmt9", "libsystemd0", "libc6",
                            "libstdc++6", "adduser"}) {
        EXPECT_NE(depends.find(pkg), std::string::npos) << pkg << " not in " << depends;
    }
    // Every library lonc and lonctl link directly belongs to a package the
    // .deb depends on.
    for (const auto& bin : {lonc_binary(), lonctl_binary()}) {
        const auto needed = run("objdump -p " + quote(bin) + " | awk '/NEEDED/ {print $2}'");
        for (const auto& lib : lines_of(needed.out)) {
            if (lib.rfind("ld-linux", 0) == 0) {
                continue;
            }
            const auto owner =
                run("dpkg -S '*/" + lib + "' | grep \"/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/" +
                    lib + "$\" | head -n1 | cut -d: -f1");
            ASSERT_FALSE(owner.out.empty()) << lib;
            const auto pkg = lines_of(owner.out).at(0);
            EXPECT_NE(depends.find(pkg), std::string::npos)
                << bin << " links " << lib << " from " << pkg << ", not in Depends: " << depends;
        }
    }
    const auto postinst =
        run("dpkg-deb --ctrl-tarfile " + quote(deb.string()) + " | tar -xOf - ./postinst");
    ASSERT_EQ(postinst.code, 0) << postinst.out;
    EXPECT_NE(postinst.out.find("adduser --system"), std::string::npos) << postinst.out;

    // Unpacked into a scratch root: the files, the unit naming /usr/sbin/lonc,
    // and the unpacked lonc checks a configuration.
    const auto root = dir / "root";
    const auto x = run("dpkg -x " + quote(deb.string()) + " " + quote(root.string()));
    ASSERT_EQ(x.code, 0) << x.out;
    expect_installed_tree(root / "usr", "README.md.gz");
    EXPECT_TRUE(std::filesystem::is_regular_file(root / "etc/lonc/lonc.ini"));
    EXPECT_NE(slurp(root / "usr/lib/systemd/system/lonc.service")
                  .find("\nExecStart=/usr/sbin/lonc --foreground\n"),
              std::string::npos);
    const auto conf = example_config(dir);
    const auto check = run(quote((root / "usr/sbin/lonc").string()) + " --check-config -c " +
                           quote(conf.string()));
    EXPECT_EQ(check.code, 0) << check.out;
    EXPECT_NE(check.out.find("configuration OK"), std::string::npos) << check.out;

    // The postinst on a machine without www (an /etc of its own in a private
    // mount namespace): creates the user and group; a second run changes
    // nothing; with the group already there it joins it.
    dir.write("postinst", postinst.out);
    const std::string script = R"sh(
        set -e
        etc=$1; postinst=$2
        cp -a /etc/. "$etc"
        for f in passwd shadow group gshadow; do
            [ -f "$etc/$f" ] && sed -i '/^www:/d' "$etc/$f"
        done
        mount --bind "$etc" /etc
        ! getent passwd www
        sh "$postinst" configure
        getent passwd www | grep -q ':/usr/sbin/nologin$'
        getent group www
        [ "$(id -gn www)" = www ]
        before=$(md5sum /etc/passwd /etc/group)
        sh "$postinst" configure
        [ "$(md5sum /etc/passwd /etc/group)" = "$before" ]
        sed -i '/^www:/d' /etc/passwd /etc/shadow
        sh "$postinst" configure
        [ "$(id -gn www)" = www ]
        echo POSTINST-OK
    )sh";
    dir.write("postinst-check.sh", script);
    std::filesystem::create_directories(dir / "etc");
    const auto real_passwd = slurp("/etc/passwd");
    const auto real_group = slurp("/etc/group");
    const auto p = run("unshare --mount --propagation private sh " +
                       quote((dir / "postinst-check.sh").string()) + " " +
                       quote((dir / "etc").string()) + " " + quote((dir / "postinst").string()));
    EXPECT_EQ(p.code, 0) << p.out;
    EXPECT_NE(p.out.find("POSTINST-OK"), std::string::npos) << p.out;
    // The machine's own files were not touched.
    EXPECT_EQ(slurp("/etc/passwd"), real_passwd);
    EXPECT_EQ(slurp("/etc/group"), real_group);
}
#endif

} // namespace
} // namespace lonc::test
