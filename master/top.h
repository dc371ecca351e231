// `wraith top`: a live view, like top(1), of a running server: request, status, byte and
// handshake rates, latency percentiles, workers and the busiest routes. It polls the master's
// `stats` control command (the live status object, common/metrics_text.h) and computes rates
// between two answers.
#pragma once

#include <string>
#include <vector>

namespace wraith {

extern const char kTopHelp[];

// `args` after the word "top"; `default_config` when no -c is given. Exit code: 0 after 'q'
// or COUNT screens, 1 when the master cannot be reached or goes away, 2 usage.
int top_main(const std::vector<std::string>& args, const std::string& default_config);

} // namespace wraith
