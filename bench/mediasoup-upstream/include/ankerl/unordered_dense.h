// Stand-in for ankerl::unordered_dense (not packaged by Debian 12 or npm), written for a
// measurement build of mediasoup 3.32.2: the map and set are the standard library's, the
// integer hash is a splitmix64 finaliser (mediasoup combines hashes and expects them mixed).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>

namespace ankerl::unordered_dense {

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27; x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

template <class T, class Enable = void>
struct hash {
  using is_avalanching = void;
  std::uint64_t operator()(const T& v) const noexcept(noexcept(std::hash<T>{}(v))) { return mix64(static_cast<std::uint64_t>(std::hash<T>{}(v))); }
};

template <class T>
struct hash<T, std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T> || std::is_pointer_v<T>>> {
  using is_avalanching = void;
  std::uint64_t operator()(const T& v) const noexcept {
    if constexpr (std::is_pointer_v<T>) return mix64(reinterpret_cast<std::uintptr_t>(v));
    else return mix64(static_cast<std::uint64_t>(v));
  }
};

template <class Key, class T, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>, class Alloc = std::allocator<std::pair<const Key, T>>>
using map = std::unordered_map<Key, T, Hash, KeyEqual, Alloc>;

template <class Key, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>, class Alloc = std::allocator<Key>>
using set = std::unordered_set<Key, Hash, KeyEqual, Alloc>;

}  // namespace ankerl::unordered_dense
