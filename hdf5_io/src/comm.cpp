// Comm and the collectives commit() is built from.
#include "detail.hpp"
#include "encoding.hpp"

#include <climits>

namespace pyckpt::h5 {

Comm::Comm(MPI_Comm comm) : comm_(comm), mpi_(true) {
  MPI_Comm_rank(comm, &rank_);
  MPI_Comm_size(comm, &size_);
}

namespace detail {

namespace {

enum class ErrorCode : std::uint64_t { Io, Format, Checksum, Usage, Other };

struct ErrorParts {
  ErrorCode code = ErrorCode::Other;
  std::string file, dataset, message;
};

ErrorParts parts_of(std::exception_ptr e) {
  const auto strip = [](const Error& err) {
    // what() is "<file>: <dataset>: <message>"; keep the message only.
    std::size_t prefix = 0;
    if (!err.file().empty()) prefix += err.file().size() + 2;
    if (!err.dataset().empty()) prefix += err.dataset().size() + 2;
    return std::string(err.what()).substr(prefix);
  };
  try {
    std::rethrow_exception(e);
  } catch (const ChecksumError& err) {
    return {ErrorCode::Checksum, err.file(), err.dataset(), strip(err)};
  } catch (const FormatError& err) {
    return {ErrorCode::Format, err.file(), err.dataset(), strip(err)};
  } catch (const UsageError& err) {
    return {ErrorCode::Usage, err.file(), err.dataset(), strip(err)};
  } catch (const Error& err) {
    return {ErrorCode::Io, err.file(), err.dataset(), strip(err)};
  } catch (const std::exception& err) {
    return {ErrorCode::Other, "", "", err.what()};
  } catch (...) {
    return {ErrorCode::Other, "", "", "unknown exception"};
  }
}

[[noreturn]] void throw_parts(const ErrorParts& p) {
  switch (p.code) {
    case ErrorCode::Checksum: throw ChecksumError(p.file, p.dataset, p.message);
    case ErrorCode::Format: throw FormatError(p.file, p.dataset, p.message);
    case ErrorCode::Usage: throw UsageError(p.file, p.dataset, p.message);
    case ErrorCode::Io: throw IoError(p.file, p.dataset, p.message);
    case ErrorCode::Other: break;
  }
  throw Error(p.file, p.dataset, p.message);
}

int as_int_count(std::size_t n) {
  if (n > static_cast<std::size_t>(INT_MAX)) throw std::length_error("pyckpt::h5: descriptor message over 2 GiB");
  return static_cast<int>(n);
}

}  // namespace

void agree(const Comm& comm, std::exception_ptr local) {
  if (!comm.is_mpi() || comm.size() == 1) {
    if (local) std::rethrow_exception(local);
    return;
  }
  const int mine = local ? comm.rank() : comm.size();
  int first = comm.size();
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm.get());
  if (first == comm.size()) return;

  Encoder enc;
  if (comm.rank() == first) {
    const ErrorParts p = parts_of(local);
    enc.u64(static_cast<std::uint64_t>(p.code));
    enc.str(p.file);
    enc.str(p.dataset);
    enc.str(p.message);
  }
  std::vector<std::byte>& buf = enc.bytes();
  std::uint64_t size = buf.size();
  MPI_Bcast(&size, 1, MPI_UINT64_T, first, comm.get());
  buf.resize(size);
  MPI_Bcast(buf.data(), as_int_count(size), MPI_BYTE, first, comm.get());
  Decoder dec(buf);
  ErrorParts p;
  p.code = static_cast<ErrorCode>(dec.u64());
  p.file = dec.str();
  p.dataset = dec.str();
  p.message = "rank " + std::to_string(first) + ": " + dec.str();
  throw_parts(p);
}

std::vector<std::vector<std::byte>> allgather_bytes(const Comm& comm, const std::vector<std::byte>& mine) {
  if (!comm.is_mpi()) return {mine};
  const int n = comm.size();
  const int my_size = as_int_count(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(n)), displs(static_cast<std::size_t>(n));
  MPI_Allgather(&my_size, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm.get());
  std::size_t total = 0;
  for (int r = 0; r < n; ++r) {
    displs[static_cast<std::size_t>(r)] = as_int_count(total);
    total += static_cast<std::size_t>(sizes[static_cast<std::size_t>(r)]);
  }
  std::vector<std::byte> all(total);
  MPI_Allgatherv(mine.data(), my_size, MPI_BYTE, all.data(), sizes.data(), displs.data(), MPI_BYTE, comm.get());
  std::vector<std::vector<std::byte>> out(static_cast<std::size_t>(n));
  for (std::size_t r = 0; r < out.size(); ++r) {
    const auto* begin = all.data() + displs[r];
    out[r].assign(begin, begin + sizes[r]);
  }
  return out;
}

}  // namespace detail
}  // namespace pyckpt::h5
