// Connection migration (RFC 9000 §9): an active, validated move to a new local port, or a
// NAT rebinding simulated by swapping the socket under ngtcp2's feet.
#include <unistd.h>

#include "tools/h3/clock.h"
#include "tools/h3/connection.h"

namespace h3 {

void Connection::perform_migration() {
    migration_requested_ = false;
    Endpoint* current = current_endpoint();
    MigrationResult result;
    result.old_port = current->bound_port;
    if (migration_kind_ == Migration::NatRebinding) {
        // Swap the socket under the path ngtcp2 knows, as a NAT would: ngtcp2 is not told,
        // the server just sees datagrams from a new port (RFC 9000 §9.3).
        SocketAddress local;
        int fd = open_udp_socket(remote_, bind_to_, local, result.error);
        if (fd < 0) {
            handler_.on_migrated(*this, result);
            return;
        }
        ev_io_stop(loop_, &current->read_watcher);
        if (write_watcher_.fd == current->fd) {
            ev_io_stop(loop_, &write_watcher_);
            ev_io_set(&write_watcher_, fd, EV_WRITE);
        }
        ::close(current->fd);
        current->fd = fd;
        current->bound_port = address_port(local.get());
        ev_io_set(&current->read_watcher, fd, EV_READ);
        ev_io_start(loop_, &current->read_watcher);
        if (!unsent_.empty()) {
            arm_write_watcher(unsent_.front().endpoint);
        }
        result.ok = true;
        result.new_port = current->bound_port;
        handler_.on_migrated(*this, result);
        return;
    }
    // Active migration (RFC 9000 §9.2): probe the new path, switch once it is validated.
    Endpoint* target = open_endpoint(result.error);
    if (!target) {
        handler_.on_migrated(*this, result);
        return;
    }
    result.new_port = target->bound_port;
    ngtcp2_path path{
        {target->local.get(), target->local.len}, {remote_.get(), remote_.len}, target};
    if (int rv = ngtcp2_conn_initiate_migration(conn_, &path, now_ns()); rv != 0) {
        result.error = std::string("cannot migrate: ") + ngtcp2_strerror(rv);
        ev_io_stop(loop_, &target->read_watcher);
        ::close(target->fd);
        endpoints_.pop_back();
        handler_.on_migrated(*this, result);
        return;
    }
    migration_validating_ = true;
    migration_target_ = target;
    migration_from_ = result.old_port;
}

void Connection::on_path_validation(const ngtcp2_path* path, bool ok) {
    if (!migration_validating_ || path->user_data != migration_target_) {
        return;
    }
    migration_validating_ = false;
    MigrationResult result;
    result.ok = ok;
    result.old_port = migration_from_;
    result.new_port = migration_target_->bound_port;
    if (!ok) {
        result.error = "path validation failed";
    }
    handler_.on_migrated(*this, result);
}

} // namespace h3
