// hdf5_io under mpirun (MPI-IO driver): per-rank data, global arrays read
// back with other rank counts, and failures that every rank must see.
#include "support.hpp"

#include <mpi.h>

#include <fstream>

namespace pyckpt::h5::testing {
namespace {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

// A scratch directory shared by all ranks (rank 0 creates and removes it).
class SharedDir {
 public:
  SharedDir() {
    std::string name;
    if (world_rank() == 0) {
      owned_ = std::make_unique<ScratchDir>();
      name = owned_->path().string();
    }
    std::uint64_t len = name.size();
    MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    name.resize(len);
    MPI_Bcast(name.data(), static_cast<int>(len), MPI_CHAR, 0, MPI_COMM_WORLD);
    path_ = name;
  }
  ~SharedDir() { MPI_Barrier(MPI_COMM_WORLD); }  // nobody still reads when rank 0 removes it
  const fs::path& path() const { return path_; }

 private:
  std::unique_ptr<ScratchDir> owned_;
  fs::path path_;
};

// Rows [begin, end) of n rows for part p of parts, deliberately uneven.
std::pair<std::uint64_t, std::uint64_t> rows_of(std::uint64_t n, int p, int parts) {
  const auto edge = [&](int k) { return k == parts ? n : (n * static_cast<std::uint64_t>(k * k + k)) / static_cast<std::uint64_t>(parts * parts + parts); };
  return {edge(p), edge(p + 1)};
}

TEST(Mpi, PerRankBlobsAndArraysRoundTrip) {
  SharedDir shared;
  const int rank = world_rank(), size = world_size();
  CheckpointDir dir(shared.path() / "ckpt");
  const std::string pickle = "pickle of rank " + std::to_string(rank);
  std::vector<double> u(100 + 10 * static_cast<std::size_t>(rank));
  for (std::size_t k = 0; k < u.size(); ++k) u[k] = rank * 1000.0 + static_cast<double>(k);
  CheckpointWriter w(dir, 3, Comm(MPI_COMM_WORLD));
  w.set_attribute("argv", std::vector<std::string>{"python3", "app.py"});
  w.set_rank_attribute("pid", std::int64_t{rank});
  w.add_blob("pickle", as_bytes(pickle));
  if (rank != 2) w.add_array("u", view(u.data(), ElementType::floating(8), {u.size()}));
  const CommitInfo info = w.commit();
  EXPECT_EQ(info.path, dir.file_for(3));
  EXPECT_EQ(info.bytes_written, pickle.size() + (rank != 2 ? u.size() * 8 : 0));

  CheckpointReader r(dir.path());
  EXPECT_EQ(r.world_size(), size);
  EXPECT_EQ(std::get<std::vector<std::string>>(r.attributes().at("hosts")).size(), static_cast<std::size_t>(size));
  EXPECT_EQ(r.attributes().at("argv"), AttrValue(std::vector<std::string>{"python3", "app.py"}));
  std::uint64_t total = 0;
  for (int q = 0; q < size; ++q) {
    SCOPED_TRACE("rank " + std::to_string(q));
    EXPECT_EQ(r.rank_attributes(q).at("pid"), AttrValue(std::int64_t{q}));
    const auto blob = r.read_blob(q, "pickle");
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(blob.data()), blob.size()), "pickle of rank " + std::to_string(q));
    total += blob.size();
    EXPECT_EQ(r.has_dataset(q, "u"), q != 2);
    if (q == 2) continue;
    std::vector<double> back(100 + 10 * static_cast<std::size_t>(q));
    r.read_array(q, "u", dest(back.data(), ElementType::floating(8), {back.size()}));
    for (std::size_t k = 0; k < back.size(); ++k) ASSERT_EQ(back[k], q * 1000.0 + static_cast<double>(k));
    total += back.size() * 8;
  }
  EXPECT_EQ(info.bytes_total, total);
  for (const VerifyResult& v : r.verify()) EXPECT_TRUE(v.ok) << v.dataset << ": " << v.message;
}

class GlobalArrays : public ::testing::TestWithParam<bool> {};

TEST_P(GlobalArrays, WrittenByAllRanksReadBackByOneTwoAndThree) {
  SharedDir shared;
  const int rank = world_rank(), size = world_size();
  CheckpointDir dir(shared.path());
  // g2[i][j] = 100 i + j, (37, 11), split by rows.
  const std::uint64_t n2 = 37, m2 = 11;
  const auto [b2, e2] = rows_of(n2, rank, size);
  std::vector<double> s2((e2 - b2) * m2);
  for (std::uint64_t i = b2; i < e2; ++i)
    for (std::uint64_t j = 0; j < m2; ++j) s2[(i - b2) * m2 + j] = static_cast<double>(100 * i + j);
  // g2s: the same values from every other column of a buffer twice as wide:
  // a strided (staged) view of a block of rows, contiguous in the file.
  std::vector<double> wide(2 * s2.size() + 1, -1.0);
  for (std::size_t k = 0; k < s2.size(); ++k) wide[2 * k] = s2[k];
  const std::vector<std::int64_t> wide_strides{static_cast<std::int64_t>(16 * m2), 16};
  // g3[i][j][k] = 10000 i + 100 j + k, (5, 9, 3), split along the middle
  // dimension (non-contiguous in the file), slabs given in F order.
  const std::uint64_t a = 5, b = 9, c = 3;
  const auto [b3, e3] = rows_of(b, rank, size);
  const std::uint64_t w3 = e3 - b3;
  std::vector<std::int32_t> s3(a * w3 * c);
  for (std::uint64_t i = 0; i < a; ++i)
    for (std::uint64_t j = 0; j < w3; ++j)
      for (std::uint64_t k = 0; k < c; ++k) s3[i + a * (j + w3 * k)] = static_cast<std::int32_t>(10000 * i + 100 * (b3 + j) + k);
  const std::vector<std::int64_t> f_strides{4, static_cast<std::int64_t>(4 * a), static_cast<std::int64_t>(4 * a * w3)};
  // names[i] = "<i>" as 'U3', 13 of them.
  const std::uint64_t n1 = 13;
  const auto [b1, e1] = rows_of(n1, rank, size);
  std::u32string s1;
  for (std::uint64_t i = b1; i < e1; ++i) {
    std::u32string t(3, U'\0');
    const std::string d = std::to_string(i);
    for (std::size_t k = 0; k < d.size(); ++k) t[k] = static_cast<char32_t>(d[k]);
    s1 += t;
  }

  WriterOptions opts;
  opts.collective_io = GetParam();
  opts.staging_bytes = 200;  // staged slabs go in several pieces
  CheckpointWriter w(dir, 1, Comm(MPI_COMM_WORLD), opts);
  w.add_global_slab("g2", {n2, m2}, {b2, 0}, view(s2.data(), ElementType::floating(8), {e2 - b2, m2}));
  w.add_global_slab("g2s", {n2, m2}, {b2, 0}, view(wide.data(), ElementType::floating(8), {e2 - b2, m2}, wide_strides));
  w.add_global_slab("g3", {a, b, c}, {0, b3, 0}, view(s3.data(), ElementType::integer(4), {a, w3, c}, f_strides));
  w.add_global_slab("names/all", {n1}, {b1}, view(s1.data(), ElementType::unicode(3), {e1 - b1}));
  w.commit();

  CheckpointReader r(dir.path());
  ASSERT_EQ(r.global_arrays().size(), 4u);
  EXPECT_EQ(r.global_array("g2").slabs.size(), static_cast<std::size_t>(size));
  for (int parts = 1; parts <= 3; ++parts) {
    for (int p = 0; p < parts; ++p) {
      SCOPED_TRACE(std::to_string(p) + " of " + std::to_string(parts));
      // Even partitions this time, so boxes straddle the written slabs.
      const std::uint64_t lo2 = n2 * static_cast<std::uint64_t>(p) / static_cast<std::uint64_t>(parts);
      const std::uint64_t hi2 = n2 * static_cast<std::uint64_t>(p + 1) / static_cast<std::uint64_t>(parts);
      std::vector<double> got2((hi2 - lo2) * m2);
      r.read_global_slab("g2", {lo2, 0}, {hi2 - lo2, m2}, dest(got2.data(), ElementType::floating(8), {hi2 - lo2, m2}));
      for (std::uint64_t i = lo2; i < hi2; ++i)
        for (std::uint64_t j = 0; j < m2; ++j) ASSERT_EQ(got2[(i - lo2) * m2 + j], static_cast<double>(100 * i + j));
      std::fill(got2.begin(), got2.end(), 0.0);
      r.read_global_slab("g2s", {lo2, 0}, {hi2 - lo2, m2}, dest(got2.data(), ElementType::floating(8), {hi2 - lo2, m2}));
      for (std::uint64_t i = lo2; i < hi2; ++i)
        for (std::uint64_t j = 0; j < m2; ++j) ASSERT_EQ(got2[(i - lo2) * m2 + j], static_cast<double>(100 * i + j));

      const std::uint64_t lo3 = b * static_cast<std::uint64_t>(p) / static_cast<std::uint64_t>(parts);
      const std::uint64_t hi3 = b * static_cast<std::uint64_t>(p + 1) / static_cast<std::uint64_t>(parts);
      std::vector<std::int64_t> got3(a * (hi3 - lo3) * c);  // converted to int64
      r.read_global_slab("g3", {0, lo3, 0}, {a, hi3 - lo3, c}, dest(got3.data(), ElementType::integer(8), {a, hi3 - lo3, c}));
      for (std::uint64_t i = 0; i < a; ++i)
        for (std::uint64_t j = lo3; j < hi3; ++j)
          for (std::uint64_t k = 0; k < c; ++k)
            ASSERT_EQ(got3[(i * (hi3 - lo3) + (j - lo3)) * c + k], static_cast<std::int64_t>(10000 * i + 100 * j + k));

      const std::uint64_t lo1 = n1 * static_cast<std::uint64_t>(p) / static_cast<std::uint64_t>(parts);
      const std::uint64_t hi1 = n1 * static_cast<std::uint64_t>(p + 1) / static_cast<std::uint64_t>(parts);
      std::u32string got1((hi1 - lo1) * 3, U'?');
      r.read_global_slab("names/all", {lo1}, {hi1 - lo1}, dest(got1.data(), ElementType::unicode(3), {hi1 - lo1}));
      for (std::uint64_t i = lo1; i < hi1; ++i) EXPECT_EQ(static_cast<char>(got1[(i - lo1) * 3]), std::to_string(i)[0]);
    }
  }
  for (const VerifyResult& v : r.verify()) EXPECT_TRUE(v.ok) << v.dataset << ": " << v.message;
}

INSTANTIATE_TEST_SUITE_P(Transfers, GlobalArrays, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "collective" : "independent"; });

TEST(Mpi, CollectiveTransfersOfPerRankArrays) {
  SharedDir shared;
  const int rank = world_rank();
  CheckpointDir dir(shared.path());
  // Different sizes and layouts per rank: the ranks make different numbers
  // of write calls, which collective transfers must pad.
  std::vector<std::int16_t> data(1000 * static_cast<std::size_t>(rank + 1));
  for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<std::int16_t>(k + static_cast<std::size_t>(rank));
  WriterOptions opts;
  opts.collective_io = true;
  opts.staging_bytes = 256;
  CheckpointWriter w(dir, 1, Comm(MPI_COMM_WORLD), opts);
  w.add_array("even", view(data.data(), ElementType::integer(2), {data.size() / 2}, {4}));
  w.add_array("all", view(data.data(), ElementType::integer(2), {data.size()}));
  w.commit();
  CheckpointReader r(dir.path());
  for (int q = 0; q < world_size(); ++q) {
    std::vector<std::int16_t> even(500 * static_cast<std::size_t>(q + 1));
    r.read_array(q, "even", dest(even.data(), ElementType::integer(2), {even.size()}));
    for (std::size_t k = 0; k < even.size(); ++k) ASSERT_EQ(even[k], static_cast<std::int16_t>(2 * k + static_cast<std::size_t>(q)));
  }
}

TEST(Mpi, AnErrorOnOneRankFailsEveryRankAndLeavesLatest) {
  SharedDir shared;
  const int rank = world_rank();
  CheckpointDir dir(shared.path());
  const std::int64_t v = rank;
  {
    CheckpointWriter w(dir, 1, Comm(MPI_COMM_WORLD));
    w.add_array("v", view(&v, ElementType::integer(8), {}));
    w.commit();
  }
  // The last rank disagrees about the global shape.
  const std::vector<std::uint64_t> shape{rank == world_size() - 1 ? 5u : 4u};
  CheckpointWriter w(dir, 2, Comm(MPI_COMM_WORLD));
  w.add_global_slab("g", shape, {0}, view(nullptr, ElementType::integer(8), {0}));
  EXPECT_THROW(w.commit(), UsageError);
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(fs::exists(fs::path(dir.file_for(2).string() + ".tmp")));
  EXPECT_EQ(CheckpointReader(dir.path()).epoch(), 1u);

  // A directory that cannot be created: rank 0 finds out, everyone throws.
  if (rank == 0) std::ofstream(shared.path() / "file") << "x";
  MPI_Barrier(MPI_COMM_WORLD);
  CheckpointWriter bad(CheckpointDir(shared.path() / "file" / "sub"), 1, Comm(MPI_COMM_WORLD));
  try {
    bad.commit();
    ADD_FAILURE() << "no exception";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), "file/sub")) << e.what();
  }
}

TEST(Mpi, NextEpochIsAgreedAndTheWriterUsesIt) {
  SharedDir shared;
  const int rank = world_rank();
  CheckpointDir dir(shared.path() / "ckpt");
  EXPECT_EQ(dir.next_epoch(Comm(MPI_COMM_WORLD)), 1u);
  const std::int32_t v = rank;
  {
    CheckpointWriter w(dir, 4, Comm(MPI_COMM_WORLD));
    w.add_array("v", view(&v, ElementType::integer(4), {}));
    w.commit();
  }
  // Only rank 0 lists: a rank that sees a stale directory listing (another
  // node's cache) still writes the same epoch.
  EXPECT_EQ(dir.next_epoch(Comm(MPI_COMM_WORLD)), 5u);
  CheckpointWriter w(dir, Comm(MPI_COMM_WORLD));
  EXPECT_EQ(w.epoch(), 5u);
  w.add_array("v", view(&v, ElementType::integer(4), {}));
  const CommitInfo info = w.commit();
  EXPECT_EQ(info.epoch, 5u);
  EXPECT_EQ(CheckpointReader(dir.path()).epoch(), 5u);
  // A sub-communicator agrees among its own ranks.
  MPI_Comm half;
  MPI_Comm_split(MPI_COMM_WORLD, rank % 2, rank, &half);
  EXPECT_EQ(dir.next_epoch(Comm(half)), 6u);
  MPI_Comm_free(&half);
}

TEST(Mpi, RetentionKeepsTheLastTwo) {
  SharedDir shared;
  CheckpointDir dir(shared.path(), 2);
  const std::int32_t v = 1;
  for (std::uint64_t e = 1; e <= 4; ++e) {
    CheckpointWriter w(dir, e, Comm(MPI_COMM_WORLD));
    w.add_array("v", view(&v, ElementType::integer(4), {}));
    w.commit();
  }
  const auto all = dir.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].epoch, 3u);
  EXPECT_EQ(all[1].epoch, 4u);
  EXPECT_EQ(CheckpointReader(dir.path()).epoch(), 4u);
}

// commit_async: the program's memory may change as soon as it returns (the
// file holds what it held at the call); nothing is committed until every
// rank's data is written and rank 0 moved the commit on; the file is the
// same self-describing, checksummed file a collective commit writes.
TEST(Mpi, AsynchronousCommitWritesTheCopyAndCommitsOnlyWhenEveryRankReported) {
  SharedDir shared;
  const int rank = world_rank(), size = world_size();
  CheckpointDir dir(shared.path() / "ckpt");
  const std::int64_t v = rank;
  {
    CheckpointWriter w(dir, 1, Comm(MPI_COMM_WORLD));
    w.add_array("v", view(&v, ElementType::integer(8), {}));
    w.commit();
  }
  std::string pickle = "pickle of rank " + std::to_string(rank);
  std::vector<double> u(1000 + 10 * static_cast<std::size_t>(rank));
  for (std::size_t k = 0; k < u.size(); ++k) u[k] = rank * 1000.0 + static_cast<double>(k);
  std::vector<double> wide(2 * u.size(), -1.0);  // every other element: a staged view
  for (std::size_t k = 0; k < u.size(); ++k) wide[2 * k] = u[k];
  const std::uint64_t n = 37, m = 11;
  const auto [b, e] = rows_of(n, rank, size);
  std::vector<std::int32_t> rows((e - b) * m);
  for (std::uint64_t i = b; i < e; ++i)
    for (std::uint64_t j = 0; j < m; ++j) rows[(i - b) * m + j] = static_cast<std::int32_t>(100 * i + j);

  StagingBuffer staging;
  std::unique_ptr<PendingCommit> pending;
  {
    CheckpointWriter w(dir, 2, Comm(MPI_COMM_WORLD));
    w.set_attribute("write_mode", std::string("async"));
    w.add_blob("pickle", as_bytes(pickle));
    w.add_array("u", view(u.data(), ElementType::floating(8), {u.size()}));
    w.add_array("strided", view(wide.data(), ElementType::floating(8), {u.size()}, {16}));
    w.add_global_slab("g", {n, m}, {b, 0}, view(rows.data(), ElementType::integer(4), {e - b, m}));
    pending = w.commit_async(staging);
  }
  EXPECT_EQ(pending->epoch(), 2u);
  std::fill(u.begin(), u.end(), -7.0);
  std::fill(wide.begin(), wide.end(), -7.0);
  std::fill(rows.begin(), rows.end(), -7);
  pickle.assign(pickle.size(), '#');
  // Rank 0 commits only from progress() or wait(): not before this point.
  EXPECT_EQ(CheckpointReader(dir.path()).epoch(), 1u);
  MPI_Barrier(MPI_COMM_WORLD);
  const CommitInfo info = pending->wait();
  EXPECT_EQ(info.epoch, 2u);
  EXPECT_TRUE(pending->progress());
  pending.reset();
  MPI_Barrier(MPI_COMM_WORLD);

  CheckpointReader r(dir.path());
  EXPECT_EQ(r.epoch(), 2u);
  EXPECT_EQ(std::get<std::string>(r.attributes().at("write_mode")), "async");
  for (const VerifyResult& checked : r.verify()) EXPECT_TRUE(checked.ok) << checked.dataset << ": " << checked.message;
  for (int q = 0; q < size; ++q) {
    SCOPED_TRACE("rank " + std::to_string(q));
    const auto blob = r.read_blob(q, "pickle");
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(blob.data()), blob.size()), "pickle of rank " + std::to_string(q));
    for (const char* name : {"u", "strided"}) {
      std::vector<double> got(1000 + 10 * static_cast<std::size_t>(q));
      r.read_array(q, name, dest(got.data(), ElementType::floating(8), {got.size()}));
      for (std::size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], q * 1000.0 + static_cast<double>(k)) << name;
    }
    EXPECT_TRUE(r.rank_attributes(q).count("seconds_write"));
  }
  std::vector<std::int32_t> all(n * m);
  r.read_global_slab("g", {0, 0}, {n, m}, dest(all.data(), ElementType::integer(4), {n, m}));
  for (std::uint64_t i = 0; i < n; ++i)
    for (std::uint64_t j = 0; j < m; ++j) ASSERT_EQ(all[i * m + j], static_cast<std::int32_t>(100 * i + j));
  EXPECT_TRUE(check_header(dir.path()).intact);
}

// What an asynchronous commit cannot write with pwrite is refused on every
// rank before anything is written.
TEST(Mpi, AsynchronousCommitRefusesSlabsThatAreNotBlocksOfRows) {
  SharedDir shared;
  const int rank = world_rank(), size = world_size();
  CheckpointDir dir(shared.path());
  const auto [b, e] = rows_of(9, rank, size);
  std::vector<std::int32_t> cols(5 * (e - b), rank);
  StagingBuffer staging;
  CheckpointWriter w(dir, 1, Comm(MPI_COMM_WORLD));
  w.add_global_slab("g", {5, 9}, {0, b}, view(cols.data(), ElementType::integer(4), {5, e - b}));
  try {
    w.commit_async(staging);
    ADD_FAILURE() << "no exception";
  } catch (const UsageError& error) {
    EXPECT_TRUE(contains(error.what(), "blocks of rows")) << error.what();
  }
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_TRUE(dir.list().empty());
  EXPECT_TRUE(dir.in_flight_files().empty());
}

}  // namespace
}  // namespace pyckpt::h5::testing
