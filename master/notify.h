// Service-manager readiness (systemd Type=notify, sd_notify(3)): READY=1 once the first
// generation serves, RELOADING=1 + MONOTONIC_USEC while a reload runs, STOPPING=1 on the way
// out, and a STATUS= line. Without $NOTIFY_SOCKET (not under systemd) every call does nothing.
#pragma once

#include <string>

namespace wraith::notify {

void ready(const std::string& status);
void reloading();
void stopping();
void status(const std::string& status);
// Binary upgrade: the new master is the service's main process from now on.
void main_pid(int pid, const std::string& status);

} // namespace wraith::notify
