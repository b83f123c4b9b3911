// HDF5 error stack -> H5Failure.
#include "hid.hpp"

#include <mutex>

namespace pyckpt::h5::detail {

void quiet_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5open();
    // The library reports errors through exceptions; HDF5's own printing to
    // stderr would only duplicate them (and scare users of a reader that
    // probes a corrupt file on purpose).
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

std::string take_hdf5_message() {
  std::string message;
  // Walking upward starts at the most specific error: the one that says
  // "truncated file: eof = ..." or carries the errno / MPI error string.
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* err, void* out) -> herr_t {
        auto& msg = *static_cast<std::string*>(out);
        if (n == 0 && err->desc != nullptr) msg = err->desc;
        return 0;
      },
      &message);
  H5Eclear2(H5E_DEFAULT);
  return message.empty() ? "unknown HDF5 error" : message;
}

void throw_h5(const std::string& what) { throw H5Failure(what + ": " + take_hdf5_message()); }

}  // namespace pyckpt::h5::detail
