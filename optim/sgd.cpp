#include <kiln/optim/sgd.h>

#include <cmath>

#include <kiln/autograd/grad_mode.h>
#include <kiln/core/parallel.h>
#include <kiln/optim/state_format.h>
#include <kiln/optim/update.h>

namespace kiln::optim {

using namespace state_format;

namespace {

// where() gives the start of an error's message, naming the group. It is called only when a
// check fails: step() checks every group at every step, and building the text (an ostringstream)
// took about 8 us of a step of step:vgg8:gn:2 (timed in a logging build).
template <class Where>
void check_options(const SGDOptions& o, const Where& where) {
  KILN_CHECK(o.lr >= 0, where(), "lr must be >= 0, got ", o.lr);
  KILN_CHECK(o.momentum >= 0, where(), "momentum must be >= 0, got ", o.momentum);
  KILN_CHECK(o.weight_decay >= 0, where(), "weight_decay must be >= 0, got ", o.weight_decay);
  KILN_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), where(),
             "nesterov needs momentum > 0 and dampening 0, got momentum ", o.momentum,
             " and dampening ", o.dampening);
}

SGDOptions parse_options(const Metadata& m, const std::string& where) {
  SGDOptions o;
  o.lr = read_double(m, "lr", where);
  o.momentum = read_double(m, "momentum", where);
  o.dampening = read_double(m, "dampening", where);
  o.weight_decay = read_double(m, "weight_decay", where);
  o.nesterov = read_bool(m, "nesterov", where);
  o.maximize = read_bool(m, "maximize", where);
  check_options(o, [&] { return where; });
  return o;
}

// One parameter's update, fused into a single pass (see sgd.h for the formulas). The scalars are
// rounded to T first and the products that PyTorch's kernels fuse are fused here too (fma), so
// f32 results follow torch.optim.SGD's arithmetic.
//   p, grad, buf: [n]
template <class T>
void sgd_update(T* p, const T* grad, T* buf, int64_t n, const SGDOptions& o, bool first_step) {
  parallel_for(0, n, kUpdateGrain, [&](int64_t begin, int64_t end) {
    // Scalars live in locals and the arrays are restrict, as in Adam's loop: read through the
    // closure, every store to p or buf might alias them, and the loop would stay scalar.
    const T weight_decay = static_cast<T>(o.weight_decay);
    const T momentum = static_cast<T>(o.momentum);
    const T one_minus_dampening = static_cast<T>(1 - o.dampening);
    const T neg_lr = static_cast<T>(-o.lr);
    const bool decay = o.weight_decay != 0, use_momentum = o.momentum != 0;
    const bool maximize = o.maximize, nesterov = o.nesterov, first = first_step;
    T* __restrict p_out = p;
    const T* __restrict g_in = grad;
    T* __restrict buf_out = buf;
    for (int64_t i = begin; i < end; ++i) {
      T d = maximize ? -g_in[i] : g_in[i];
      // d = g + weight_decay * p
      if (decay) d = std::fma(p_out[i], weight_decay, d);
      if (use_momentum) {
        // b = momentum * b + (1 - dampening) * d
        const T b = first ? d : std::fma(d, one_minus_dampening, buf_out[i] * momentum);
        buf_out[i] = b;
        // d = d + momentum * b  (nesterov)  or  b
        d = nesterov ? std::fma(b, momentum, d) : b;
      }
      // p = p - lr * d
      p_out[i] = std::fma(d, neg_lr, p_out[i]);
    }
  });
}

}  // namespace

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), std::nullopt}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions defaults) : Optimizer("SGD"), defaults_(defaults) {
  check_options(defaults_, [] { return std::string("SGD: "); });
  size_t total = 0;
  for (ParamGroup& group : groups) {
    total += group.params.size();
    add_param_group(std::move(group));
  }
  KILN_CHECK(total > 0, "SGD: got an empty parameter list");
}

void SGD::add_param_group(ParamGroup group) {
  const SGDOptions options = group.options.value_or(defaults_);
  check_options(options,
                [&] { return detail::concat("SGD: group ", num_param_groups(), ": "); });
  add_group_params(std::move(group.params));
  options_.push_back(options);
}

SGDOptions& SGD::options(size_t group) {
  params(group);  // bounds check
  return options_[group];
}

const SGDOptions& SGD::options(size_t group) const {
  params(group);
  return options_[group];
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t g = 0; g < num_param_groups(); ++g) {
    const SGDOptions& o = options_[g];
    check_options(o, [&] { return detail::concat("SGD: group ", g, ": "); });
    const std::vector<Tensor>& group = params(g);
    for (size_t j = 0; j < group.size(); ++j) {
      ParamUpdate update(group[j], "SGD");
      if (!update.has_grad()) continue;
      ParamState& state = mutable_state(first_index(g) + j);
      Tensor buf;
      bool first_step = false;
      if (o.momentum != 0) {
        auto it = state.find("momentum_buffer");
        first_step = it == state.end();
        buf = first_step ? Tensor::empty(update.param().shape(), update.param().dtype()) : it->second;
        if (first_step) state["momentum_buffer"] = buf;
      }
      dispatch_floating(update.param().dtype(), "SGD", [&]<class T>() {
        sgd_update<T>(update.param().data_ptr<T>(), update.grad().data_ptr<T>(),
                      buf.defined() ? buf.data_ptr<T>() : nullptr, update.param().numel(), o,
                      first_step);
      });
      update.finish();
    }
  }
}

Metadata SGD::group_options(size_t group) const {
  const SGDOptions& o = options(group);
  return {{"lr", format_double(o.lr)},
          {"momentum", format_double(o.momentum)},
          {"dampening", format_double(o.dampening)},
          {"weight_decay", format_double(o.weight_decay)},
          {"nesterov", format_bool(o.nesterov)},
          {"maximize", format_bool(o.maximize)}};
}

void SGD::validate_group_options(const Metadata& options, const std::string& where) const {
  parse_options(options, where);
}

void SGD::set_group_options(size_t group, const Metadata& options, const std::string& where) {
  this->options(group) = parse_options(options, where);
}

}  // namespace kiln::optim
