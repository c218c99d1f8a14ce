#include "io/data-regions.h"

#include <algorithm>

#include <fmt/format.h>

#include "upg/core/error.h"

namespace upg::io {

void check_disjoint(std::vector<DataRegion> regions, std::string_view path) {
  std::erase_if(regions, [](const DataRegion& r) { return r.size == 0; });
  std::sort(regions.begin(), regions.end(),
            [](const DataRegion& a, const DataRegion& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < regions.size(); ++i) {
    const DataRegion& a = regions[i - 1];
    const DataRegion& b = regions[i];
    // Sorted by start, so only neighbours can overlap first; a.begin + a.size cannot
    // overflow because the readers checked every region lies inside the file.
    if (b.begin < a.begin + a.size)
      throw Error(fmt::format("{}: tensors {:?} (bytes [{}, {})) and {:?} (bytes [{}, {})) overlap", path, a.name,
                              a.begin, a.begin + a.size, b.name, b.begin, b.begin + b.size));
  }
}

}  // namespace upg::io
