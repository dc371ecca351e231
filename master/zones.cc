#include "master/zones.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace wraith {

ZoneManager::Zone::~Zone() {
    if (info.mem)
        munmap(info.mem, info.size);
    if (fd >= 0)
        ::close(fd);
}

std::shared_ptr<ZoneManager::Zone> ZoneManager::find_live(const ZoneSpec& spec) const {
    for (const auto& w : live_)
        if (auto z = w.lock())
            if (z->info.name == spec.name && z->info.size == spec.size &&
                z->info.version == spec.version && z->handover == spec.handover)
                return z;
    return nullptr;
}

std::shared_ptr<ZoneManager::Zone> ZoneManager::make(const ZoneSpec& spec, std::string* err) {
    auto z = std::make_shared<Zone>();
    z->info.name = spec.name;
    z->info.size = spec.size;
    z->info.version = spec.version;
    z->handover = spec.handover;
    std::string label = "wraith:" + spec.name;
    z->fd = memfd_create(label.c_str(), MFD_CLOEXEC);
    if (z->fd < 0) {
        *err = "shared memory zone " + spec.name + ": memfd_create: " + std::strerror(errno);
        return nullptr;
    }
    if (ftruncate(z->fd, static_cast<off_t>(spec.size)) != 0) {
        *err = "shared memory zone " + spec.name + " (" + std::to_string(spec.size) +
               " bytes): " + std::strerror(errno);
        return nullptr;
    }
    void* mem = mmap(nullptr, spec.size, PROT_READ | PROT_WRITE, MAP_SHARED, z->fd, 0);
    if (mem == MAP_FAILED) {
        *err = "shared memory zone " + spec.name + ": mmap: " + std::strerror(errno);
        return nullptr;
    }
    z->info.mem = mem;
    if (spec.init)
        spec.init(mem, spec.size); // the pages are zero-filled already
    return z;
}

bool ZoneManager::prepare(const std::vector<ZoneSpec>& specs, ZoneSet& out, std::string* err) {
    out = ZoneSet{};
    for (size_t i = 0; i < specs.size(); ++i) {
        const ZoneSpec& spec = specs[i];
        for (size_t j = 0; j < i; ++j)
            if (specs[j].name == spec.name) {
                *err = "shared memory zone " + spec.name + " is declared twice";
                return false;
            }
        if (spec.size == 0) {
            *err = "shared memory zone " + spec.name + " has no size";
            return false;
        }
        std::shared_ptr<Zone> z = find_live(spec);
        if (!z) {
            for (auto it = inherited_.begin(); it != inherited_.end(); ++it)
                if ((*it)->info.name == spec.name && (*it)->info.size == spec.size &&
                    (*it)->info.version == spec.version && spec.handover) {
                    z = *it;
                    inherited_.erase(it);
                    break;
                }
            if (z)
                live_.push_back(z);
        }
        if (!z) {
            z = make(spec, err);
            if (!z)
                return false;
            live_.push_back(z);
        }
        out.view.add(z->info);
        out.zones.push_back(std::move(z));
    }
    std::erase_if(live_, [](const std::weak_ptr<Zone>& w) { return w.expired(); });
    return true;
}

std::map<std::string, ZoneManager::Inherited> ZoneManager::handover() const {
    std::map<std::string, Inherited> out;
    for (const auto& w : live_) {
        auto z = w.lock();
        if (!z || !z->handover)
            continue;
        out[z->info.name] = Inherited{z->fd, z->info.size, z->info.version};
    }
    return out;
}

std::vector<int> ZoneManager::fds() const {
    std::vector<int> out;
    for (const auto& w : live_)
        if (auto z = w.lock())
            out.push_back(z->fd);
    for (const auto& z : inherited_)
        out.push_back(z->fd);
    return out;
}

bool ZoneManager::adopt(const std::map<std::string, Inherited>& zones, std::string* err) {
    for (const auto& [name, in] : zones) {
        struct stat st;
        if (fstat(in.fd, &st) != 0 || static_cast<size_t>(st.st_size) != in.size) {
            *err = "inherited shared memory zone " + name + " is not a memfd of " +
                   std::to_string(in.size) + " bytes";
            return false;
        }
        fcntl(in.fd, F_SETFD, FD_CLOEXEC);
        auto z = std::make_shared<Zone>();
        z->info.name = name;
        z->info.size = in.size;
        z->info.version = in.version;
        z->fd = in.fd;
        void* mem = mmap(nullptr, in.size, PROT_READ | PROT_WRITE, MAP_SHARED, in.fd, 0);
        if (mem == MAP_FAILED) {
            *err = "inherited shared memory zone " + name + ": mmap: " + std::strerror(errno);
            return false;
        }
        z->info.mem = mem;
        inherited_.push_back(std::move(z));
    }
    return true;
}

} // namespace wraith
