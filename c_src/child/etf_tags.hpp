// The external term format tags the isolated context's codec reads and writes
// (erts/emulator/beam/external.h; the format is documented in OTP's erts "External Term Format").
#pragma once

#include <cstdint>

namespace etf {

constexpr std::uint8_t kVersion = 131;
constexpr std::uint8_t kNewFloat = 70;
constexpr std::uint8_t kBitBinary = 77;
constexpr std::uint8_t kNewPid = 88;
constexpr std::uint8_t kNewPort = 89;
constexpr std::uint8_t kNewerRef = 90;
constexpr std::uint8_t kSmallInt = 97;
constexpr std::uint8_t kInt = 98;
constexpr std::uint8_t kAtom = 100;
constexpr std::uint8_t kPort = 102;
constexpr std::uint8_t kPid = 103;
constexpr std::uint8_t kSmallTuple = 104;
constexpr std::uint8_t kLargeTuple = 105;
constexpr std::uint8_t kNil = 106;
constexpr std::uint8_t kString = 107;
constexpr std::uint8_t kList = 108;
constexpr std::uint8_t kBinary = 109;
constexpr std::uint8_t kSmallBig = 110;
constexpr std::uint8_t kLargeBig = 111;
constexpr std::uint8_t kNewFun = 112;
constexpr std::uint8_t kExport = 113;
constexpr std::uint8_t kNewRef = 114;
constexpr std::uint8_t kSmallAtom = 115;
constexpr std::uint8_t kMap = 116;
constexpr std::uint8_t kAtomUtf8 = 118;
constexpr std::uint8_t kSmallAtomUtf8 = 119;
constexpr std::uint8_t kV4Port = 120;

}  // namespace etf
