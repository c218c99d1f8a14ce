#pragma once
// Names shared by the UPG writer and reader (docs/FORMAT.md): metadata keys, the
// tokenizer tensors, and the part suffixes a compressed weight "<W>" is stored under.
namespace upg::io::upg_keys {

inline constexpr const char* kVersionKey = "upg.version";
inline constexpr const char* kVersion = "2";
inline constexpr const char* kConfigKey = "upg.config";
inline constexpr const char* kCompressionKey = "upg.compression";
inline constexpr const char* kTensorsKey = "upg.tensors";

inline constexpr const char* kTokenizerTensor = "upg.tokenizer_json";
inline constexpr const char* kTokenizerConfigTensor = "upg.tokenizer_config_json";

// Part suffixes, appended to the weight's original name.
inline constexpr const char* kRowPointers = ".row_pointers";
inline constexpr const char* kDeltaIndices = ".delta_indices";
inline constexpr const char* kScales = ".scales";
inline constexpr const char* kValues = ".values";
inline constexpr const char* kPrimeIndices = ".prime_indices";
inline constexpr const char* kCodebook = ".codebook";
inline constexpr const char* kNmValues = ".nm_values";
inline constexpr const char* kNmPositions = ".nm_positions";
inline constexpr const char* kQ4 = ".q4";
inline constexpr const char* kQ3 = ".q3";
inline constexpr const char* kQ2 = ".q2";
inline constexpr const char* kGroupScales = ".group_scales";
inline constexpr const char* kGroupZeros = ".group_zeros";

inline constexpr const char* kAllParts[] = {kRowPointers, kDeltaIndices, kScales,      kValues,     kPrimeIndices,
                                            kCodebook,    kNmValues,     kNmPositions, kQ4,         kQ3,
                                            kQ2,          kGroupScales,  kGroupZeros};
// The codes part of a grouped encoding of `bits` bits (4, 3 or 2).
inline const char* grouped_codes_part(int bits) { return bits == 4 ? kQ4 : bits == 3 ? kQ3 : kQ2; }

}  // namespace upg::io::upg_keys
