// The account workers run as. Local files (/etc/passwd, /etc/group) are read directly, so
// the master and its workers do not load NSS modules (and their memory) for the common case
// of a system user; other users (LDAP, systemd-homed, ...) are looked up through NSS.
#pragma once

#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace wraith {

struct Account {
    uid_t uid = 0;
    gid_t gid = 0;              // the group given, else the user's primary group
    std::vector<gid_t> groups;  // supplementary groups (setgroups), primary included
};

// nullopt when the user (or the given group) does not exist.
std::optional<Account> lookup_account(const std::string& user, const std::string& group);
bool user_exists(const std::string& user);
bool group_exists(const std::string& group);

} // namespace wraith
