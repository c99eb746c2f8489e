// The whole public API: #include <kiln/kiln.h>, then `using namespace kiln;`.
#pragma once

#include <kiln/core/error.h>
#include <kiln/core/generator.h>
#include <kiln/core/parallel.h>
#include <kiln/core/safetensors.h>
#include <kiln/core/tensor.h>

#include <kiln/autograd/function.h>
#include <kiln/autograd/grad_mode.h>
#include <kiln/autograd/gradcheck.h>
#include <kiln/autograd/ops.h>

#include <kiln/layers/conv2d.h>
#include <kiln/layers/module.h>
#include <kiln/layers/sequential.h>
#include <kiln/layers/ws_conv2d.h>
