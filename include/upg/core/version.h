#pragma once
// The one place the version lives (besides CMake's project()): the CLI prints it and the
// compressor records it in every UPG file it writes.
namespace upg {

inline constexpr const char* kVersion = "upg 0.1.0";

}  // namespace upg
