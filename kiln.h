// The whole public API: #include <kiln/kiln.h>, then `using namespace kiln;`.
#pragma once

#include <kiln/core/error.h>
#include <kiln/core/generator.h>
#include <kiln/core/parallel.h>
#include <kiln/core/safetensors.h>
#include <kiln/core/tensor.h>
#ifdef KILN_WITH_MPI
#include <kiln/core/distributed.h>
#endif

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/gradcheck.h>
#include <kiln/autograd/ops.h>

#include <kiln/layers/activation.h>
#include <kiln/layers/batch_norm.h>
#include <kiln/layers/conv2d.h>
#ifdef KILN_WITH_MPI
#include <kiln/layers/data_parallel.h>
#endif
#include <kiln/layers/dropout.h>
#include <kiln/layers/group_norm.h>
#include <kiln/layers/init.h>
#include <kiln/layers/linear.h>
#include <kiln/layers/loss.h>
#include <kiln/layers/module.h>
#include <kiln/layers/pooling.h>
#include <kiln/layers/repr.h>
#include <kiln/layers/sequential.h>
#include <kiln/layers/ws_conv2d.h>

#include <kiln/datasets/cifar10.h>
#include <kiln/datasets/data_loader.h>
#include <kiln/datasets/dataset.h>
#include <kiln/datasets/in_memory_images.h>
#include <kiln/datasets/mnist.h>
#include <kiln/datasets/sampler.h>
#include <kiln/datasets/transforms.h>

#include <kiln/optim/adam.h>
#include <kiln/optim/checkpoint.h>
#include <kiln/optim/clip_grad.h>
#include <kiln/optim/lr_scheduler.h>
#include <kiln/optim/optimizer.h>
#include <kiln/optim/sgd.h>
