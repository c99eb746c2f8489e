#include <kiln/layers/data_parallel.h>

#include <map>

#include <kiln/autograd/grad_mode.h>

namespace kiln::dist {

namespace {

// A view of flat[offset, offset + numel) with the shape of `like`.
Tensor segment(const Tensor& flat, int64_t offset, const Tensor& like) {
  return flat.slice(0, offset, offset + like.numel()).view(like.shape());
}

// FNV-1a over the dtypes and shapes, to compare the ranks' modules cheaply.
int64_t layout_hash(const std::vector<Tensor>& tensors) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](uint64_t v) {
    h ^= v;
    h *= 1099511628211ull;
  };
  for (const Tensor& t : tensors) {
    mix(static_cast<uint64_t>(t.dtype()));
    mix(static_cast<uint64_t>(t.dim()));
    for (int64_t s : t.shape()) mix(static_cast<uint64_t>(s));
  }
  return static_cast<int64_t>(h >> 1);
}

// Broadcasts tensors from root, packed into one flat buffer per dtype.
void broadcast_packed(const std::vector<Tensor>& tensors, int root) {
  std::map<DType, std::vector<Tensor>> by_dtype;
  for (const Tensor& t : tensors) by_dtype[t.dtype()].push_back(t);
  NoGradGuard no_grad;
  for (auto& [dtype, group] : by_dtype) {
    int64_t numel = 0;
    for (const Tensor& t : group) numel += t.numel();
    Tensor flat = Tensor::empty({numel}, dtype);
    int64_t offset = 0;
    for (const Tensor& t : group) {
      segment(flat, offset, t).copy_(t);
      offset += t.numel();
    }
    broadcast(flat, root);
    offset = 0;
    for (Tensor t : group) {
      t.copy_(segment(flat, offset, t));
      offset += t.numel();
    }
  }
}

}  // namespace

void broadcast_module(nn::Module& module, int root) {
  std::vector<Tensor> tensors = module.parameters();
  for (const Tensor& b : module.buffers()) tensors.push_back(b);
  int64_t numel = 0;
  for (const Tensor& t : tensors) numel += t.numel();
  // Every rank checks, and every rank throws, so none is left waiting in a collective.
  const int64_t mine[3] = {static_cast<int64_t>(tensors.size()), numel, layout_hash(tensors)};
  int64_t low[3] = {mine[0], mine[1], mine[2]}, high[3] = {mine[0], mine[1], mine[2]};
  all_reduce(low, 3, ReduceOp::min);
  all_reduce(high, 3, ReduceOp::max);
  KILN_CHECK(low[0] == high[0] && low[1] == high[1] && low[2] == high[2],
             "dist::broadcast_module: the ranks' ", module.type_name(), " modules differ: this rank "
             "has ", mine[0], " parameters and buffers with ", mine[1], " values, and the ranks "
             "range over ", low[0], "..", high[0], " tensors and ", low[1], "..", high[1],
             " values (or their shapes or dtypes differ); build the same model on every rank");
  broadcast_packed(tensors, root);
}

GradientAverager::GradientAverager(nn::Module& module, GradientAveragerOptions options)
    : module_(module), options_(options) {
  KILN_CHECK(options_.bucket_bytes > 0, "GradientAverager: expected bucket_bytes > 0, got ",
             options_.bucket_bytes);
  broadcast_module(module_);
  // Consecutive parameters of one dtype share a bucket until it would exceed bucket_bytes.
  std::vector<Bucket> planned;
  int64_t bytes = 0;
  for (const Tensor& p : module_.parameters()) {
    if (!p.requires_grad()) continue;
    const int64_t p_bytes = p.numel() * static_cast<int64_t>(itemsize(p.dtype()));
    const bool fits = !planned.empty() && planned.back().params.front().dtype() == p.dtype() &&
                      bytes + p_bytes <= options_.bucket_bytes;
    if (!fits) {
      planned.emplace_back();
      bytes = 0;
    }
    planned.back().params.push_back(p);
    bytes += p_bytes;
  }
  for (Bucket& bucket : planned) {
    int64_t numel = static_cast<int64_t>(bucket.params.size());  // the presence flags
    for (const Tensor& p : bucket.params) numel += p.numel();
    bucket.flat = Tensor::empty({numel}, bucket.params.front().dtype());
  }
  buckets_ = std::move(planned);
}

std::vector<int64_t> GradientAverager::bucket_numels() const {
  std::vector<int64_t> out;
  for (const Bucket& b : buckets_) out.push_back(b.flat.numel());
  return out;
}

void GradientAverager::average() {
  NoGradGuard no_grad;
  for (Bucket& bucket : buckets_) {
    // flat = [grad of each parameter (zeros when it has none) | 1 or 0 per parameter]
    const int64_t n_params = static_cast<int64_t>(bucket.params.size());
    const int64_t flags = bucket.flat.numel() - n_params;
    int64_t offset = 0;
    for (int64_t i = 0; i < n_params; ++i) {
      const Tensor& p = bucket.params[static_cast<size_t>(i)];
      const Tensor grad = p.grad();
      Tensor dst = segment(bucket.flat, offset, p);
      if (grad.defined()) dst.copy_(grad);
      else dst.zero_();
      bucket.flat.slice(0, flags + i, flags + i + 1).fill_(grad.defined() ? 1.0 : 0.0);
      offset += p.numel();
    }
    // grad = 1/P sum_r grad_r; a flag above zero: some rank had a gradient.
    all_reduce(bucket.flat, ReduceOp::avg);
    const std::vector<double> present = bucket.flat.slice(0, flags, flags + n_params).to_vector<double>();
    offset = 0;
    for (int64_t i = 0; i < n_params; ++i) {
      Tensor p = bucket.params[static_cast<size_t>(i)];
      Tensor mean = segment(bucket.flat, offset, p);
      offset += p.numel();
      if (present[static_cast<size_t>(i)] == 0) continue;
      Tensor grad = p.grad();
      if (grad.defined()) grad.copy_(mean);
      else p.set_grad(mean.clone());
    }
  }
  if (options_.broadcast_buffers) sync_buffers();
}

void GradientAverager::sync_buffers() {
  const std::vector<Tensor> buffers = module_.buffers();
  if (!buffers.empty()) broadcast_packed(buffers, 0);
}

}  // namespace kiln::dist
