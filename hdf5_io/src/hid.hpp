// Internal: RAII ownership of HDF5 identifiers and conversion of HDF5's error
// stack into C++ exceptions. Every hid_t this library opens lives in a Hid, so
// an exception anywhere closes what was opened on the way.
#pragma once

#include <hdf5.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace pyckpt::h5::detail {

// An HDF5 call failed. what() holds the caller's description and the most
// specific message of HDF5's error stack; the public layer adds the file and
// dataset and picks the error class (IoError while writing, FormatError while
// reading).
class H5Failure : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The most specific message on HDF5's default error stack (then cleared).
// Requires quiet_hdf5() to have run, which silences automatic printing.
std::string take_hdf5_message();

// Turns off HDF5's automatic printing of error stacks to stderr (idempotent).
void quiet_hdf5();

[[noreturn]] void throw_h5(const std::string& what);

// Returns id, or throws H5Failure naming `what` if the call failed.
inline hid_t checked(hid_t id, const char* what) {
  if (id < 0) throw_h5(what);
  return id;
}
inline void checked_status(herr_t status, const char* what) {
  if (status < 0) throw_h5(what);
}

// One owned identifier and the H5?close that releases it.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  // Takes ownership of id; throws if id reports a failure.
  Hid(hid_t id, Closer close, const char* what) : id_(checked(id, what)), close_(close) {}
  ~Hid() { reset(); }
  Hid(Hid&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Hid& operator=(Hid&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

  // Closes now and throws if closing failed: closing a file flushes it, and a
  // failed flush must not go unnoticed the way a destructor would let it.
  void close(const char* what) {
    const herr_t status = close_(std::exchange(id_, H5I_INVALID_HID));
    checked_status(status, what);
  }

 private:
  void reset() noexcept {
    // Parallel HDF5 shuts itself down in MPI_Finalize; an object that
    // outlives it (a Python reader at interpreter exit) has nothing to close.
    if (id_ >= 0 && H5Iis_valid(id_) > 0) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

inline Hid file_id(hid_t id, const char* what) { return Hid(id, H5Fclose, what); }
inline Hid group_id(hid_t id, const char* what) { return Hid(id, H5Gclose, what); }
inline Hid dataset_id(hid_t id, const char* what) { return Hid(id, H5Dclose, what); }
inline Hid space_id(hid_t id, const char* what) { return Hid(id, H5Sclose, what); }
inline Hid type_id(hid_t id, const char* what) { return Hid(id, H5Tclose, what); }
inline Hid attr_id(hid_t id, const char* what) { return Hid(id, H5Aclose, what); }
inline Hid plist_id(hid_t id, const char* what) { return Hid(id, H5Pclose, what); }

}  // namespace pyckpt::h5::detail
