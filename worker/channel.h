// Messages on the master <-> worker channel (a SOCK_SEQPACKET socketpair): one byte each.
#pragma once

namespace wraith::channel {

// master -> worker
constexpr char kDrain = 'D';  // stop accepting, finish in-flight exchanges, exit when idle
constexpr char kReopen = 'R'; // reopen error and access logs (USR1)
constexpr char kStop = 'S';   // close everything and exit now
// worker -> master
constexpr char kReady = 'r';   // the loop is running and accepting
constexpr char kDrained = 'd'; // closed its listening sockets (status table: draining)

} // namespace wraith::channel
