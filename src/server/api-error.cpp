#include "server/api-error.h"

namespace upg::server {

nlohmann::json ApiError::body() const {
  using nlohmann::json;
  return {{"error",
           {{"message", what()},
            {"type", type_},
            {"param", param_.empty() ? json() : json(param_)},
            {"code", code_.empty() ? json() : json(code_)}}}};
}

}  // namespace upg::server
