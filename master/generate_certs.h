// `wraith generate certs`: development certificates for TLS listeners. --self-signed makes (or
// reuses) a local development CA and a leaf certificate signed by it, so a browser or curl that
// trusts the CA once accepts every certificate made afterwards.
#pragma once

#include <string>
#include <vector>

namespace wraith {

// The text of `wraith help generate` and `wraith generate certs --help`.
extern const char kGenerateCertsHelp[];

// Runs `wraith generate certs ARGS...` (ARGS are the options after "certs"). `config_path` is the
// config whose server.cert_dir is the default output folder. Returns the exit code: 0 done,
// 1 runtime error (unwritable folder, bad --hosts entry, broken existing CA), 2 usage error.
int generate_certs(const std::vector<std::string>& args, const std::string& config_path);

} // namespace wraith
