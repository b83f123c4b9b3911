// CheckpointDir: the names in a checkpoint directory (checkpoints, `latest`,
// in-flight files, writing markers, the request file), listing and epochs.
#include "detail.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace fs = std::filesystem;

namespace pyckpt::h5 {

namespace {

constexpr std::string_view kLatest = "latest";
constexpr std::string_view kInFlightSuffix = ".tmp";
constexpr std::string_view kWritingMarker = ".writing.";
constexpr std::string_view kRequestFile = ".request";

// An epoch written in decimal, at least min_digits long.
std::optional<std::uint64_t> parse_epoch(std::string_view digits, std::size_t min_digits) {
  std::uint64_t epoch = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), epoch);
  if (ec != std::errc() || end != digits.data() + digits.size() || digits.size() < min_digits) return std::nullopt;
  return epoch;
}

// The files of dir whose names parse to an epoch, by ascending epoch (none if
// the directory does not exist).
template <class Parse>
std::vector<std::pair<std::uint64_t, fs::path>> files_by_epoch(const fs::path& dir, Parse parse) {
  std::vector<std::pair<std::uint64_t, fs::path>> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (const auto epoch = parse(it->path().filename().string())) out.emplace_back(*epoch, it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// "ckpt.<digits><suffix>" -> its epoch (suffix ".h5" or ".h5.tmp").
std::optional<std::uint64_t> parse_checkpoint_name(std::string_view name, std::string_view suffix) {
  constexpr std::string_view prefix = "ckpt.";
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) || !name.ends_with(suffix)) {
    return std::nullopt;
  }
  return parse_epoch(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()), 8);
}

}  // namespace

CheckpointDir::CheckpointDir(fs::path dir, int keep) : dir_(std::move(dir)), keep_(keep) {
  if (keep_ < 1) throw UsageError(dir_.string(), "", "keep must be at least 1, got " + std::to_string(keep_));
}

fs::path CheckpointDir::file_for(std::uint64_t epoch) const {
  char name[40];
  std::snprintf(name, sizeof name, "ckpt.%08llu.h5", static_cast<unsigned long long>(epoch));
  return dir_ / name;
}

fs::path CheckpointDir::in_flight_file_for(std::uint64_t epoch) const {
  return fs::path(file_for(epoch).string() + std::string(kInFlightSuffix));
}

fs::path CheckpointDir::latest_link() const { return dir_ / kLatest; }

fs::path CheckpointDir::request_path() const { return dir_ / kRequestFile; }

fs::path CheckpointDir::writing_marker(std::uint64_t epoch) const {
  return dir_ / (std::string(kWritingMarker) + std::to_string(epoch));
}

std::optional<std::uint64_t> CheckpointDir::parse_writing_marker(std::string_view filename) {
  if (filename.size() <= kWritingMarker.size() || !filename.starts_with(kWritingMarker)) return std::nullopt;
  return parse_epoch(filename.substr(kWritingMarker.size()), 1);
}

std::vector<std::pair<std::uint64_t, fs::path>> CheckpointDir::writing_markers() const {
  return files_by_epoch(dir_, parse_writing_marker);
}

std::vector<std::pair<std::uint64_t, fs::path>> CheckpointDir::in_flight_files() const {
  const std::string suffix = ".h5" + std::string(kInFlightSuffix);
  return files_by_epoch(dir_, [&](std::string_view name) { return parse_checkpoint_name(name, suffix); });
}

std::optional<fs::path> CheckpointDir::latest() const {
  const fs::path link = latest_link();
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(link, ec))) return std::nullopt;
  const fs::path target = fs::read_symlink(link, ec);
  if (ec) throw IoError(link.string(), "", "cannot read symlink: " + ec.message());
  const fs::path file = target.is_absolute() ? target : dir_ / target;
  if (!fs::is_regular_file(file, ec)) {
    throw FormatError(link.string(), "", "`latest` points to a missing file " + file.string());
  }
  return file;
}

std::vector<CheckpointEntry> CheckpointDir::list() const {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec) return out;  // a directory not created yet holds no checkpoints
  std::optional<fs::path> newest;
  try {
    newest = latest();
  } catch (const Error&) {
    // A dangling `latest` marks nothing; listing still works.
  }
  for (const fs::directory_entry& e : it) {
    const std::optional<std::uint64_t> epoch = parse_checkpoint_name(e.path().filename().string(), ".h5");
    struct stat st {};
    if (!epoch || ::lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    out.push_back({*epoch, e.path(), static_cast<std::int64_t>(st.st_mtime), static_cast<std::uint64_t>(st.st_size),
                   newest && newest->filename() == e.path().filename()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.epoch < b.epoch; });
  return out;
}

void CheckpointDir::create() const { detail::create_private_directories(dir_); }

namespace detail {

void create_private_directories(const fs::path& dir) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(dir, ec);
  if (ec) throw IoError(dir.string(), "", "cannot create the directory: " + ec.message());
  fs::path prefix;
  for (const fs::path& part : absolute) {
    prefix /= part;
    if (::mkdir(prefix.c_str(), 0700) == 0) {
      // mkdir's mode is masked by the umask; only the owner may enter.
      if (::chmod(prefix.c_str(), 0700) != 0) {
        throw IoError(prefix.string(), "", std::string("cannot make the directory private: ") + std::strerror(errno));
      }
    } else if (errno != EEXIST) {
      throw IoError(prefix.string(), "", std::string("cannot create the directory: ") + std::strerror(errno));
    }
  }
  if (!fs::is_directory(absolute, ec)) throw IoError(dir.string(), "", "exists and is not a directory");
}

}  // namespace detail

std::uint64_t CheckpointDir::next_epoch() const {
  const std::vector<CheckpointEntry> all = list();
  return all.empty() ? 1 : all.back().epoch + 1;
}

std::uint64_t CheckpointDir::next_epoch(const Comm& comm) const {
  if (!comm.is_mpi()) return next_epoch();
  std::uint64_t epoch = 0;
  std::exception_ptr failed;
  if (comm.rank() == 0) {
    try {
      epoch = next_epoch();
    } catch (...) {
      failed = std::current_exception();
    }
  }
  detail::agree(comm, failed);  // rank 0's failure is every rank's
  MPI_Bcast(&epoch, 1, MPI_UINT64_T, 0, comm.get());
  return epoch;
}

}  // namespace pyckpt::h5
