#include "common/accounts.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <grp.h>
#include <pwd.h>

namespace wraith {

namespace {

bool local_user(const std::string& name, uid_t* uid, gid_t* gid) {
    FILE* f = fopen("/etc/passwd", "re");
    if (!f)
        return false;
    bool found = false;
    while (struct passwd* pw = fgetpwent(f)) {
        if (name == pw->pw_name) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

// Finds `group` (if non-empty) and every group listing `user` as a member.
bool local_groups(const std::string& user, const std::string& group, gid_t* group_gid,
                  std::vector<gid_t>* member_of) {
    FILE* f = fopen("/etc/group", "re");
    if (!f)
        return false;
    bool found = group.empty();
    while (struct group* gr = fgetgrent(f)) {
        if (!group.empty() && group == gr->gr_name) {
            *group_gid = gr->gr_gid;
            found = true;
        }
        for (char** m = gr->gr_mem; m && *m; ++m)
            if (user == *m)
                member_of->push_back(gr->gr_gid);
    }
    fclose(f);
    return found;
}

} // namespace

std::optional<Account> lookup_account(const std::string& user, const std::string& group) {
    Account a;
    std::vector<gid_t> member_of;
    gid_t group_gid = 0;
    if (local_user(user, &a.uid, &a.gid) && local_groups(user, group, &group_gid, &member_of)) {
        if (!group.empty())
            a.gid = group_gid;
        a.groups = std::move(member_of);
    } else {
        // Not a local account: ask NSS (this loads its modules into this process).
        struct passwd* pw = getpwnam(user.c_str());
        if (!pw)
            return std::nullopt;
        a.uid = pw->pw_uid;
        a.gid = pw->pw_gid;
        int n = 64;
        std::vector<gid_t> list(n);
        if (getgrouplist(user.c_str(), pw->pw_gid, list.data(), &n) < 0) {
            list.resize(n);
            getgrouplist(user.c_str(), pw->pw_gid, list.data(), &n);
        }
        list.resize(std::max(n, 0));
        a.groups = std::move(list);
        if (!group.empty()) {
            struct group* gr = getgrnam(group.c_str());
            if (!gr)
                return std::nullopt;
            a.gid = gr->gr_gid;
        }
    }
    if (std::find(a.groups.begin(), a.groups.end(), a.gid) == a.groups.end())
        a.groups.push_back(a.gid);
    return a;
}

bool user_exists(const std::string& user) {
    uid_t uid;
    gid_t gid;
    return local_user(user, &uid, &gid) || getpwnam(user.c_str()) != nullptr;
}

bool group_exists(const std::string& group) {
    gid_t gid = 0;
    std::vector<gid_t> unused;
    return local_groups("", group, &gid, &unused) || getgrnam(group.c_str()) != nullptr;
}

} // namespace wraith
