// libpyckpt_hash_secret.so: gives a restarted interpreter the str/bytes hash
// secret of the interpreter that wrote the checkpoint, when that one ran
// with a random secret (a plain `python3 app.py` calling pyckpt.checkpoint()).
//
// Set orders and the layout of dicts of str keys follow the hash secret; a
// resumed program must iterate as the uninterrupted one would. PYTHONHASHSEED
// can only name the secrets CPython derives from a 32-bit seed; a random one
// is 24 bytes that CPython 3.11 reads, once, at start-up, with getrandom()
// (Python/bootstrap_hash.c, _Py_HashRandomization_Init -> pyurandom). The
// restart runs the interpreter again with this library preloaded and the
// recorded secret in PYCKPT_HASH_SECRET (48 hex digits): its getrandom()
// answers that first 24-byte request with the secret, and every other
// request with the kernel's random bytes. pyckpt checks afterwards that the
// interpreter's secret is the recorded one (pyckpt._core.hash_secret()).
//
// The constructor removes PYCKPT_HASH_SECRET and this library from the
// environment, so that the program and its children see neither.
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr std::size_t kSecretSize = 24;  // sizeof(_Py_HashSecret_t)
constexpr const char* kVariable = "PYCKPT_HASH_SECRET";

unsigned char g_secret[kSecretSize];
bool g_pending = false;  // the secret is still to be handed out

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// LD_PRELOAD without the entry naming this library.
std::string preload_without_this(const char* preload) {
  std::string kept;
  std::string entries = preload;
  for (std::size_t start = 0; start <= entries.size();) {
    std::size_t end = entries.find_first_of(": ", start);
    if (end == std::string::npos) end = entries.size();
    const std::string entry = entries.substr(start, end - start);
    if (!entry.empty() && entry.find("libpyckpt_hash_secret") == std::string::npos) {
      kept += (kept.empty() ? "" : ":") + entry;
    }
    start = end + 1;
  }
  return kept;
}

__attribute__((constructor)) void take_secret() {
  const char* hex = std::getenv(kVariable);
  if (hex != nullptr && std::strlen(hex) == 2 * kSecretSize) {
    g_pending = true;
    for (std::size_t i = 0; i < kSecretSize; ++i) {
      const int high = hex_digit(hex[2 * i]), low = hex_digit(hex[2 * i + 1]);
      if (high < 0 || low < 0) {
        g_pending = false;  // malformed: the interpreter gets a random secret, which pyckpt then reports
        break;
      }
      g_secret[i] = static_cast<unsigned char>(high * 16 + low);
    }
  }
  unsetenv(kVariable);
  if (const char* preload = std::getenv("LD_PRELOAD")) {
    const std::string kept = preload_without_this(preload);
    if (kept.empty()) {
      unsetenv("LD_PRELOAD");
    } else {
      setenv("LD_PRELOAD", kept.c_str(), 1);
    }
  }
}

}  // namespace

extern "C" __attribute__((visibility("default"))) ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
  if (g_pending && length == kSecretSize) {
    g_pending = false;
    std::memcpy(buffer, g_secret, kSecretSize);
    return static_cast<ssize_t>(kSecretSize);
  }
  return syscall(SYS_getrandom, buffer, length, flags);
}
