// gelu_form.h — which GELU a model uses, shared by both kernel sets. It lives outside the backend
// namespaces so that argument-dependent lookup on it never pulls one backend's kernels into the
// other's build.
#pragma once

namespace paratrain {

enum class GeluForm { Erf, Tanh };  // erf: BERT; tanh approximation: GPT-2

}  // namespace paratrain
