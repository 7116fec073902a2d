#include "tessera/nn/moe_dispatch.hpp"

#include <algorithm>

#include "tessera/ops.hpp"

namespace tessera {

RoutedTable routed_table(const MoeRouting& r) {
  RoutedTable t{r.tokens, r.topk, std::vector<float>(static_cast<std::size_t>(r.tokens * r.topk), -1.0f), r.probs};
  for (std::int64_t e = 0; e < r.experts; ++e) {
    const auto& tokens = r.expert_tokens[static_cast<std::size_t>(e)];
    const auto& slots = r.expert_slots[static_cast<std::size_t>(e)];
    for (std::size_t i = 0; i < tokens.size(); ++i)
      t.expert[static_cast<std::size_t>(tokens[i] * r.topk + slots[i])] = static_cast<float>(e);
  }
  return t;
}

RoutedTable gather_table(RoutedTable own, const TpGroup& ep, Device device) {
  const int P = tp_size(ep);
  if (P == 1) return own;
  const auto n = static_cast<std::int64_t>(own.expert.size());
  std::vector<float> packed(own.expert);
  packed.insert(packed.end(), own.weight.begin(), own.weight.end());
  Tensor all = Tensor::empty({P * 2 * n}, DType::f32, device);
  ep->all_gather(Tensor::from<float>({2 * n}, packed).to(device), all);
  const std::vector<float> host = all.to_vector<float>();
  RoutedTable t{own.rows * P, own.topk, {}, {}};
  for (int q = 0; q < P; ++q) {
    const auto at = host.begin() + static_cast<std::ptrdiff_t>(2 * n * q);
    t.expert.insert(t.expert.end(), at, at + n);
    t.weight.insert(t.weight.end(), at + n, at + 2 * n);
  }
  return t;
}

Dispatch dispatch(const RoutedTable& t, std::int64_t first_expert, std::int64_t count, Device device,
                  const std::vector<std::int64_t>* buffer_row, RowShare share) {
  std::vector<std::vector<std::int64_t>> per_expert(static_cast<std::size_t>(count));
  const auto first_pair = static_cast<std::size_t>(share.begin(t.rows) * t.topk);
  const auto end_pair = static_cast<std::size_t>(share.end(t.rows) * t.topk);
  for (std::size_t i = first_pair; i < end_pair; ++i) {
    if (t.expert[i] < 0) continue;  // dropped
    const auto local = static_cast<std::int64_t>(t.expert[i]) - first_expert;
    if (local >= 0 && local < count) per_expert[static_cast<std::size_t>(local)].push_back(static_cast<std::int64_t>(i));
  }
  Dispatch d;
  d.table_rows = t.rows;
  std::vector<std::int32_t> rows;
  std::vector<float> w;
  d.first.push_back(0);
  for (const auto& pairs : per_expert) {
    for (std::int64_t pair : pairs) {
      d.pairs.push_back(pair);
      const std::int64_t row = pair / t.topk;
      rows.push_back(static_cast<std::int32_t>(buffer_row ? (*buffer_row)[static_cast<std::size_t>(row)] : row));
      w.push_back(t.weight[static_cast<std::size_t>(pair)]);
    }
    d.first.push_back(static_cast<std::int64_t>(d.pairs.size()));
  }
  const auto n = static_cast<std::int64_t>(d.pairs.size());
  d.ids = Tensor::from<std::int32_t>({n}, rows).to(device);
  d.weights = Tensor::from<float>({n}, w).to(device);
  return d;
}

Exchange plan_exchange(const RoutedTable& t, int ranks, int rank, std::int64_t experts_per_rank, Device device,
                       int slices, int slice) {
  const int P = ranks;
  Exchange x;
  x.rank = rank;
  const std::int64_t N = t.rows / P;
  std::vector<std::vector<std::int32_t>> sends(static_cast<std::size_t>(P));
  x.buffer_row.assign(static_cast<std::size_t>(t.rows), -1);
  x.first.push_back(0);
  std::int64_t received = 0;
  std::vector<char> to(static_cast<std::size_t>(P));
  for (int q = 0; q < P; ++q) {
    for (std::int64_t token = 0; token < N; ++token) {
      const std::int64_t row = q * N + token;
      std::fill(to.begin(), to.end(), 0);
      for (std::int64_t s = 0; s < t.topk; ++s) {
        const float e = t.expert[static_cast<std::size_t>(row * t.topk + s)];
        if (e < 0) continue;
        const std::int64_t block = static_cast<std::int64_t>(e) / experts_per_rank;
        if (block % slices == slice) to[static_cast<std::size_t>(block / slices)] = 1;
      }
      if (q == x.rank)
        for (int r = 0; r < P; ++r)
          if (to[static_cast<std::size_t>(r)]) sends[static_cast<std::size_t>(r)].push_back(static_cast<std::int32_t>(token));
      if (to[static_cast<std::size_t>(x.rank)]) x.buffer_row[static_cast<std::size_t>(row)] = received++;
    }
    x.first.push_back(received);
  }
  for (const auto& rows : sends)
    x.send_rows.push_back(Tensor::from<std::int32_t>({static_cast<std::int64_t>(rows.size())}, rows).to(device));
  return x;
}

Tensor exchange_rows(const Tensor& rows, const Exchange& x, Communicator& ep) {
  const std::int64_t C = rows.size(1);
  Tensor buffer = rows.new_empty({x.first.back(), C});
  std::vector<P2POp> ops;
  for (int r = 0; r < ep.size(); ++r) {
    if (x.sent(r) == 0) continue;
    Tensor out = r == x.rank ? buffer.rows(x.first[r], x.first[r + 1]) : rows.new_empty({x.sent(r), C});
    ops::embedding_forward(x.send_rows[static_cast<std::size_t>(r)], rows, out);
    if (r != x.rank) ops.push_back({P2POp::Kind::send, out, r});
  }
  for (int q = 0; q < ep.size(); ++q)
    if (q != x.rank && x.received(q) > 0) ops.push_back({P2POp::Kind::recv, buffer.rows(x.first[q], x.first[q + 1]), q});
  for (CommRequest& r : ep.start_batch(std::move(ops))) r.wait();
  return buffer;
}

Tensor combine_rows(const Tensor& partial, const Exchange& x, Communicator& ep, std::int64_t tokens) {
  const std::int64_t C = partial.size(1);
  std::vector<Tensor> back(static_cast<std::size_t>(ep.size()));
  std::vector<P2POp> ops;
  for (int q = 0; q < ep.size(); ++q)
    if (q != x.rank && x.received(q) > 0) ops.push_back({P2POp::Kind::send, partial.rows(x.first[q], x.first[q + 1]), q});
  for (int r = 0; r < ep.size(); ++r) {
    if (x.sent(r) == 0) continue;
    Tensor& b = back[static_cast<std::size_t>(r)];
    b = r == x.rank ? partial.rows(x.first[r], x.first[r + 1]) : partial.new_empty({x.sent(r), C});
    if (r != x.rank) ops.push_back({P2POp::Kind::recv, b, r});
  }
  for (CommRequest& r : ep.start_batch(std::move(ops))) r.wait();
  Tensor out = partial.new_zeros({tokens, C});
  for (int r = 0; r < ep.size(); ++r)
    if (x.sent(r) > 0) ops::embedding_backward(x.send_rows[static_cast<std::size_t>(r)], back[static_cast<std::size_t>(r)], out);
  return out;
}

}  // namespace tessera
