#include "lonc/core/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace lonc {
namespace {

const char* const full_conf = R"(# access.conf
<Location /adm>
PerlSetVar lonHostID msul1
</Location>
PerlSetVar	londPort	5663
    PerlSetVar lonDaemons /home/httpd/perl
PerlSetVar lonTabDir /home/httpd/lonTabs
PerlSetVar lonSockDir /home/httpd/sockets
PerlSetVar lonDocRoot "/home/httpd/html"
PerlSetVar lonAdmEMail adm@example.edu
# PerlSetVar lonHostID commented
PerlSetVar londPort 5664
)";

TEST(AccessConf, ReadsPerlSetVarLines) {
    const auto conf = parse_access_conf(full_conf, "access.conf");
    EXPECT_TRUE(conf.problems.empty());
    ASSERT_NE(conf.get("lonHostID"), nullptr);
    EXPECT_EQ(*conf.get("lonHostID"), "msul1"); // the commented line is skipped
    EXPECT_EQ(*conf.get("londPort"), "5664");   // later lines win
    EXPECT_EQ(conf.vars.at("londPort").line, 12);
    EXPECT_EQ(*conf.get("lonDaemons"), "/home/httpd/perl"); // indented
    EXPECT_EQ(*conf.get("lonDocRoot"), "/home/httpd/html"); // quotes stripped
    EXPECT_EQ(conf.get("Location"), nullptr);
}

TEST(AccessConf, SettingsFromFullConf) {
    const auto conf = parse_access_conf(full_conf, "access.conf");
    std::vector<Problem> problems;
    const auto s = settings_from(conf, problems);
    ASSERT_TRUE(s.has_value());
    EXPECT_TRUE(problems.empty());
    EXPECT_EQ(s->host_id, "msul1");
    EXPECT_EQ(s->lond_port, 5664);
    EXPECT_EQ(s->log_file(), "/home/httpd/perl/logs/lonc.log");
    EXPECT_EQ(s->pid_file(), "/home/httpd/perl/logs/lonc.pid");
    EXPECT_EQ(s->perm_log_file(), "/home/httpd/perl/logs/lonnet.perm.log");
    EXPECT_EQ(s->hosts_tab(), "/home/httpd/lonTabs/hosts.tab");
    EXPECT_EQ(s->spool_dir(), "/home/httpd/sockets/delayed");
    EXPECT_EQ(s->socket_path("msul2"), "/home/httpd/sockets/msul2");
    EXPECT_EQ(s->status_dir(), "/home/httpd/html/lon-status");
    EXPECT_EQ(s->adm_email, "adm@example.edu");
    EXPECT_EQ(s->sys_email, "");
}

TEST(AccessConf, EachMissingKeyIsNamed) {
    for (const char* key :
         {"lonHostID", "londPort", "lonDaemons", "lonTabDir", "lonSockDir", "lonDocRoot"}) {
        std::string text;
        for (const char* k :
             {"lonHostID", "londPort", "lonDaemons", "lonTabDir", "lonSockDir", "lonDocRoot"}) {
            if (std::string(k) != key) {
                text += std::string("PerlSetVar ") + k +
                        (std::string(k) == "londPort" ? " 1\n" : " x\n");
            }
        }
        std::vector<Problem> problems;
        EXPECT_FALSE(settings_from(parse_access_conf(text, "/etc/a.conf"), problems).has_value());
        ASSERT_EQ(problems.size(), 1U) << key;
        EXPECT_EQ(problems[0].to_string(),
                  std::string("/etc/a.conf: required key ") + key + " is missing");
    }
}

TEST(AccessConf, BadPortAndHostId) {
    const auto conf = parse_access_conf("PerlSetVar lonHostID ../x\nPerlSetVar londPort 70000\n"
                                        "PerlSetVar lonDaemons d\nPerlSetVar lonTabDir t\n"
                                        "PerlSetVar lonSockDir s\nPerlSetVar lonDocRoot r\n"
                                        "PerlSetVar lonAdmEMail\n",
                                        "a.conf");
    ASSERT_EQ(conf.problems.size(), 1U);
    EXPECT_EQ(conf.problems[0].line, 7);
    std::vector<Problem> problems;
    EXPECT_FALSE(settings_from(conf, problems).has_value());
    ASSERT_EQ(problems.size(), 2U);
    EXPECT_EQ(problems[0].line, 1);
    EXPECT_NE(problems[0].message.find("not a valid host id"), std::string::npos);
    EXPECT_EQ(problems[1].line, 2);
    EXPECT_NE(problems[1].message.find("not a TCP port"), std::string::npos);
}

TEST(AccessConf, AMisspeltKeyIsNamedAtItsLine) {
    const auto conf = parse_access_conf("PerlSetVar lonHostID msul1\nPerlSetVar londPort 5663\n"
                                        "PerlSetVar lonDaemons /d\nPerlSetVar lonTabDir /t\n"
                                        "PerlSetVar lonSockdir /s\nPerlSetVar lonDocRoot /r\n",
                                        "/etc/a.conf");
    std::vector<Problem> problems;
    EXPECT_FALSE(settings_from(conf, problems).has_value());
    ASSERT_EQ(problems.size(), 1U);
    EXPECT_EQ(problems[0].to_string(), "/etc/a.conf:5: required key lonSockDir is missing; is "
                                       "lonSockdir a misspelling of it?");
}

TEST(Closest, NearMissesOnlyAndLetterCaseIgnored) {
    const std::vector<std::string> keys = {"request-timeout", "retry-min", "retry-max"};
    EXPECT_EQ(closest("request-timout", keys), "request-timeout");
    EXPECT_EQ(closest("Retry-Min", keys), "retry-min");
    EXPECT_EQ(closest("zzzz-qqqq", keys), "");
    EXPECT_EQ(closest("", keys), "");
}

TEST(HostId, Validation) {
    for (const char* ok : {"msul1", "lon_capa.edu", "a-b", "A.9", "a...", "h1.bad2", "bad.h1",
                           "sent1", "xsent", "h1_bad", "x.sentry"}) {
        EXPECT_TRUE(valid_host_id(ok)) << ok;
    }
    for (const char* bad :
         {"", ".", "..", "...", ".lonc-control", ".h1", "a/b", "a b", "x\n", "../etc", "\xc3\xa9",
          "a:b", "h1.bad", "h1.sent", "a.b.bad", "bad", "sent"}) {
        EXPECT_FALSE(valid_host_id(bad)) << bad;
    }
}

TEST(HostsTab, GoodBadAndSkippedLines) {
    const auto tab = parse_hosts_tab("msul1:msu:library:zaphod.lite.msu.edu:35.8.63.51\n"
                                     "# a comment\n"
                                     "\n"
                                     "noip:msu:access:nowhere:\n"
                                     "short:msu:library\n"
                                     "../x:msu:library:h:1.2.3.4\n"
                                     "badip:msu:library:h:1.2.3\n"
                                     "msul1:msu:library:again:1.2.3.4\n"
                                     "lon_capa.edu:lc:access:h2:127.0.0.2\r\n"
                                     "   msul3 : msu : access : h3 : 127.0.0.3   ",
                                     "hosts.tab");
    ASSERT_EQ(tab.peers.size(), 3U);
    EXPECT_EQ(tab.peers[0].id, "msul1");
    EXPECT_EQ(tab.peers[0].hostname, "zaphod.lite.msu.edu");
    EXPECT_EQ(tab.peers[0].ip, "35.8.63.51");
    EXPECT_EQ(tab.peers[0].line, 1);
    EXPECT_EQ(tab.peers[1].id, "lon_capa.edu");
    EXPECT_EQ(tab.peers[1].ip, "127.0.0.2");
    EXPECT_EQ(tab.peers[2].id, "msul3");
    EXPECT_EQ(tab.peers[2].role, "access");
    EXPECT_EQ(tab.find("noip"), nullptr);
    ASSERT_EQ(tab.problems.size(), 4U);
    EXPECT_EQ(tab.problems[0].line, 5);
    EXPECT_NE(tab.problems[0].message.find("found 3 fields"), std::string::npos);
    EXPECT_EQ(tab.problems[1].line, 6);
    EXPECT_NE(tab.problems[1].message.find("unsafe host id"), std::string::npos);
    EXPECT_EQ(tab.problems[2].line, 7);
    EXPECT_NE(tab.problems[2].message.find("not an IPv4 address"), std::string::npos);
    EXPECT_EQ(tab.problems[3].line, 8);
    EXPECT_NE(tab.problems[3].to_string().find(
                  "hosts.tab:8: duplicate host id 'msul1' (first on line 1)"),
              std::string::npos);
}

TEST(HostsTab, HostIdsEndingLikeTheSpoolsOwnFilesAreRefusedWithFileAndLine) {
    // delayed/1.m.h1.bad is h1's message set aside; read as a spool entry
    // it would belong to a host "h1.bad".
    const auto tab = parse_hosts_tab("h1:d:library:a:127.0.0.1\n"
                                     "h1.bad:d:library:b:127.0.0.2\n"
                                     "h1.sent:d:library:c:127.0.0.3\n"
                                     "sent:d:library:d:127.0.0.4\n"
                                     "bad:d:library:e:127.0.0.5\n",
                                     "/etc/hosts.tab");
    ASSERT_EQ(tab.peers.size(), 1U);
    ASSERT_EQ(tab.problems.size(), 4U);
    EXPECT_NE(tab.problems[0].to_string().find("/etc/hosts.tab:2: host id 'h1.bad' ends in .bad"),
              std::string::npos)
        << tab.problems[0].to_string();
    EXPECT_NE(tab.problems[1].to_string().find("/etc/hosts.tab:3: host id 'h1.sent' ends in"),
              std::string::npos)
        << tab.problems[1].to_string();
    // Host "sent"'s message 1700000000.abc.sent would read as a marker.
    EXPECT_NE(tab.problems[2].to_string().find("/etc/hosts.tab:4: host id 'sent' is bad or sent"),
              std::string::npos)
        << tab.problems[2].to_string();
    EXPECT_NE(tab.problems[3].to_string().find("/etc/hosts.tab:5: host id 'bad' is bad or sent"),
              std::string::npos)
        << tab.problems[3].to_string();
}

class TempDir {
public:
    TempDir() {
        char tmpl[] = "/tmp/lonc-config-test.XXXXXX";
        path_ = mkdtemp(tmpl);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    void write(const std::string& name, const std::string& text) const {
        std::ofstream(path_ / name) << text;
    }

private:
    std::filesystem::path path_;
};

std::string conf_for(const std::filesystem::path& dir, const std::string& id = "msul1") {
    return "PerlSetVar lonHostID " + id + "\nPerlSetVar londPort 5663\nPerlSetVar lonDaemons " +
           dir.string() + "\nPerlSetVar lonTabDir " + dir.string() + "\nPerlSetVar lonSockDir " +
           dir.string() + "\nPerlSetVar lonDocRoot " + dir.string() + "\n";
}

TEST(LoadConfig, Good) {
    TempDir d;
    d.write("access.conf", conf_for(d.path()));
    d.write("hosts.tab", "msul1:msu:library:h1:127.0.0.1\nmsul2:msu:library:h2:127.0.0.2\nbad\n");
    const auto cfg = load_config(d.path() / "access.conf");
    EXPECT_TRUE(cfg.ok());
    ASSERT_NE(cfg.own_host(), nullptr);
    EXPECT_EQ(cfg.own_host()->ip, "127.0.0.1");
    EXPECT_EQ(cfg.hosts.peers.size(), 2U);
    ASSERT_EQ(cfg.problems.size(), 1U); // the bad line is reported, not fatal
    EXPECT_EQ(cfg.problems[0].line, 3);
}

TEST(LoadConfig, FatalCases) {
    TempDir d;
    {
        const auto cfg = load_config(d.path() / "missing.conf");
        EXPECT_FALSE(cfg.ok());
        ASSERT_EQ(cfg.problems.size(), 1U);
        EXPECT_NE(cfg.problems[0].message.find("cannot read"), std::string::npos);
    }
    d.write("access.conf", conf_for(d.path()));
    {
        const auto cfg = load_config(d.path() / "access.conf"); // no hosts.tab
        EXPECT_FALSE(cfg.ok());
        EXPECT_NE(cfg.problems.back().to_string().find("hosts.tab: cannot read"),
                  std::string::npos);
    }
    d.write("hosts.tab", "msul2:msu:library:h2:127.0.0.2\n");
    {
        const auto cfg = load_config(d.path() / "access.conf");
        EXPECT_FALSE(cfg.ok());
        EXPECT_NE(cfg.problems.back().message.find("this host's id 'msul1'"), std::string::npos);
    }
}

TEST(LoadConfig, ProblemsComeInLineOrderOnceEachAndExtraWordsAreOne) {
    TempDir d;
    d.write("hosts.tab", "msul1:msu:library:h1:127.0.0.1\n");
    d.write("access.conf",
            "PerlSetVar lonHostID msul1\n"
            "PerlSetVar lonDocRoot\n" // line 2: no value (and so missing: said once)
            "PerlSetVar lonDaemons " +
                d.path().string() +
                "\n"
                "PerlSetVar lonTabDir " +
                d.path().string() +
                "\n"
                "PerlSetVar lonSockDir " +
                d.path().string() +
                " /home/httpd/other\n"                                      // line 5
                "PerlSetVar lonAdmEMail \"Admin Team <adm@example.edu>\"\n" // quoted: one value
                "PerlSetVar SomethingElse for apache only\n" // not lonc's: not its business
                "PerlSetVar londPort 99999\n");              // line 8: out of range
    const auto cfg = load_config(d.path() / "access.conf");
    EXPECT_FALSE(cfg.ok());
    std::vector<std::string> got;
    for (const auto& p : cfg.problems) {
        got.push_back(p.to_string());
    }
    const auto f = (d.path() / "access.conf").string();
    ASSERT_EQ(got.size(), 3U) << ::testing::PrintToString(got);
    EXPECT_EQ(got[0].rfind(f + ":2: PerlSetVar needs a name and a value", 0), 0U) << got[0];
    EXPECT_EQ(got[1].rfind(f + ":5: lonSockDir takes one value; extra words after '", 0), 0U)
        << got[1];
    EXPECT_NE(got[1].find("'/home/httpd/other'"), std::string::npos) << got[1];
    EXPECT_EQ(got[2].rfind(f + ":8: ", 0), 0U) << got[2];
    EXPECT_NE(got[2].find("londPort"), std::string::npos) << got[2];
}

TEST(AccessConf, AQuotedValueMayHoldSpaces) {
    const auto conf = parse_access_conf("PerlSetVar lonAdmEMail \"Admin <a@b.edu>\"\n", "f");
    ASSERT_NE(conf.get("lonAdmEMail"), nullptr);
    EXPECT_EQ(*conf.get("lonAdmEMail"), "Admin <a@b.edu>");
    EXPECT_EQ(conf.vars.at("lonAdmEMail").extra, "");
}

} // namespace
} // namespace lonc
