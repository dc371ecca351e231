#include "master/notify.h"

#include <systemd/sd-daemon.h>

#include <ctime>

namespace wraith::notify {

namespace {

void send(const std::string& text) {
    // 0: keep NOTIFY_SOCKET in the environment; workers never call this, and a binary
    // upgrade's new master must find it too.
    sd_notify(0, text.c_str());
}

} // namespace

void ready(const std::string& status) {
    send("READY=1\nSTATUS=" + status);
}

void reloading() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ull +
                              static_cast<unsigned long long>(ts.tv_nsec) / 1000;
    send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading");
}

void stopping() {
    send("STOPPING=1\nSTATUS=stopping");
}

void status(const std::string& text) {
    send("STATUS=" + text);
}

void main_pid(int pid, const std::string& text) {
    // Sent by the old main process, which systemd still listens to (NotifyAccess=main); after
    // it, the new master's own notifications count and its exit would end the service.
    send("MAINPID=" + std::to_string(pid) + "\nSTATUS=" + text);
}

} // namespace wraith::notify
