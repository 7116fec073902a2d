// The backends of this process: the CPU's as backend 0, then each backend plugin the first time its
// name is asked for. Lookups happen on every allocation and op, so they read a fixed table without
// a lock; the table and the backends live until the process ends (tensors in static objects may be
// freed after main returns, and need their backend then).
#include <array>
#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include "tessera/backend.hpp"
#include "tessera/backends/cpu_backend.hpp"
#include "tessera/error.hpp"
#include "tessera/logging.hpp"
#include "tessera/plugin.hpp"
#include "tessera/quote.hpp"

namespace tessera {

namespace {

constexpr std::size_t kMaxBackends = 16;

struct Registry {
  std::array<std::atomic<Backend*>, kMaxBackends> table{};
  std::atomic<std::size_t> count{0};
  std::mutex adding;  // serialises loading; readers do not take it
};

Registry& registry() {
  static Registry* r = [] {
    auto* made = new Registry;
    made->table[0].store(new CpuBackend);
    made->count.store(1);
    return made;
  }();
  return *r;
}

// The id of a registered backend named `name`, or -1.
int find_registered(Registry& r, const std::string& name) {
  for (std::size_t i = 0; i < r.count.load(); ++i)
    if (r.table[i].load()->name() == name) return static_cast<int>(i);
  return -1;
}

}  // namespace

Backend& backend_of(Device device) {
  Registry& r = registry();
  if (device.backend >= r.count.load())
    throw Error(fmt::format("device with backend id {} was never registered", device.backend));
  return *r.table[device.backend].load();
}

Device device_named(const std::string& name) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.adding);
  int id = find_registered(r, name);
  if (id < 0) {
    if (r.count.load() == kMaxBackends) throw Error(fmt::format("more than {} backends loaded", kMaxBackends));
    PluginPtr<Backend> made = create_plugin<Backend>("backend", name);
    if (made->name() != name)
      throw PluginError(fmt::format("backend plugin {} calls itself {}", quote_untrusted(name), quote_untrusted(made->name())));
    // Never unloaded: the plugin's library stays mapped while the process lives.
    id = static_cast<int>(r.count.load());
    r.table[static_cast<std::size_t>(id)].store(made.release());
    r.count.store(static_cast<std::size_t>(id) + 1);
  }
  Device d;
  d.backend = static_cast<std::uint8_t>(id);
  return d;
}

Device resolve_device(const std::string& setting) {
  if (setting != "auto") return device_named(setting);
  // The accelerator that ranks highest among the backend plugins that find a device here.
  Device best = Device::cpu();
  int best_priority = 0;
  for (const PluginInfo& info : available_plugins("backend")) {
    Device d;
    try {
      d = device_named(info.name);
    } catch (const Error& e) {
      log_info("device = \"auto\": backend {} does not load here: {}", info.name, e.what());
      continue;  // not a choice
    }
    Backend& b = backend_of(d);
    if (b.auto_priority() > 0 && b.device_count() == 0)
      log_info("device = \"auto\": backend {} has no device here ({}); not using it", b.name(), b.unavailable_reason());
    if (b.auto_priority() > best_priority && b.device_count() > 0) {
      best = d;
      best_priority = b.auto_priority();
    }
  }
  if (best.is_cpu()) log_info("device = \"auto\": running on the CPU");
  return best;
}

}  // namespace tessera
