#include "tessera/parallel/gather_stages.hpp"

#include <algorithm>
#include <sstream>

#include <fmt/format.h>

#include "tessera/error.hpp"
#include "tessera/ops.hpp"

namespace tessera {

namespace {

// "name\tdim,dim,…\n" per tensor: the receiver rebuilds the shapes, then splits one flat buffer.
std::string describe_tensors(const NamedTensors& tensors) {
  std::string header;
  for (const auto& [name, t] : tensors) {
    header += name + '\t';
    for (std::int64_t d = 0; d < t.dim(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(t.size(d));
    }
    header += '\n';
  }
  return header;
}

NamedTensors receive_tensors(Communicator& group, int rank) {
  Tensor header_size = Tensor::empty({1}, DType::i64);
  group.recv(header_size, rank, 0);
  Tensor header = Tensor::empty({header_size.data<std::int64_t>()[0]}, DType::u8);
  group.recv(header, rank, 1);
  std::istringstream lines(std::string(header.data<std::uint8_t>(), header.data<std::uint8_t>() + header.numel()));
  NamedTensors out;
  std::int64_t total = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) throw CommError(fmt::format("rank {} of {} sent a malformed tensor list", rank, group.describe()));
    Shape shape;
    std::istringstream dims(line.substr(tab + 1));
    for (std::string d; std::getline(dims, d, ',');) shape.push_back(std::stoll(d));
    out.emplace_back(line.substr(0, tab), Tensor::empty(shape));
    total += out.back().second.numel();
  }
  Tensor data = Tensor::empty({total});
  group.recv(data, rank, 2);
  std::int64_t offset = 0;
  for (auto& [_, t] : out) {
    std::copy_n(data.data<float>() + offset, t.numel(), t.data<float>());
    offset += t.numel();
  }
  return out;
}

void send_tensors(const NamedTensors& tensors, Communicator& group, int to = 0) {
  const std::string text = describe_tensors(tensors);
  Tensor header = Tensor::empty({static_cast<std::int64_t>(text.size())}, DType::u8);
  std::copy(text.begin(), text.end(), header.data<std::uint8_t>());
  std::int64_t total = 0;
  for (const auto& [_, t] : tensors) total += t.numel();
  Tensor data = Tensor::empty({total});
  std::int64_t offset = 0;
  for (const auto& [_, t] : tensors) {
    Tensor dst = data.rows(offset, offset + t.numel());
    ops::copy(t.reshape({t.numel()}), dst);  // from the device, if the parameters are on one
    offset += t.numel();
  }
  group.send(Tensor::from<std::int64_t>({1}, {header.numel()}), to, 0);
  group.send(header, to, 1);
  group.send(data, to, 2);
}

}  // namespace

NamedTensors gather_to_first_rank(const NamedTensors& local, Communicator& group) {
  if (group.rank() != 0) {
    send_tensors(local, group);
    return {};
  }
  NamedTensors all = local;
  for (int rank = 1; rank < group.size(); ++rank)
    for (auto& named : receive_tensors(group, rank)) all.push_back(std::move(named));
  return all;
}

NamedTensors broadcast_from_first_rank(const NamedTensors& tensors, Communicator& group) {
  if (group.rank() != 0) return receive_tensors(group, 0);
  for (int rank = 1; rank < group.size(); ++rank) send_tensors(tensors, group, rank);
  return tensors;
}

NamedTensors gather_experts_to_first_rank(const NamedTensors& local, const std::vector<bool>& expert, Communicator& ep) {
  if (expert.size() != local.size())
    throw Error(fmt::format("gather_experts_to_first_rank: {} flags for {} tensors", expert.size(), local.size()));
  if (ep.rank() == 0) return gather_to_first_rank(local, ep);
  NamedTensors experts;
  for (std::size_t i = 0; i < local.size(); ++i)
    if (expert[i]) experts.push_back(local[i]);
  return gather_to_first_rank(experts, ep);
}

}  // namespace tessera
