// hdf5_io in a process without MPI (Comm::serial(), POSIX driver): element
// types, layouts, attributes, names, the commit protocol and its failures.
#include "support.hpp"

#include <hdf5.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <complex>
#include <fstream>
#include <thread>

namespace pyckpt::h5::testing {
namespace {

using Kind = ElementType::Kind;
constexpr ByteOrder kBig = ByteOrder::Big;

CommitInfo write_one(const CheckpointDir& dir, std::uint64_t epoch, const std::string& name, const ArrayView& v,
                     WriterOptions options = {}) {
  CheckpointWriter w(dir, epoch, Comm::serial(), options);
  w.add_array(name, v);
  return w.commit();
}

// --------------------------------------------------------- element types ---

struct TypeCase {
  std::string label;
  ElementType type;
};

std::vector<TypeCase> every_type() {
  using ET = ElementType;
  ET point = ET::compound(16, {{"x", 0, ET::floating(8), {}}, {"n", 8, ET::integer(4), {}}, {"ok", 12, ET::boolean(), {}}});
  ET nested = ET::compound(48, {{"id", 0, ET::unsigned_integer(8), {}},
                                {"p", 8, point, {}},
                                {"v", 24, ET::floating(4, kBig), {3}},
                                {"tag", 36, ET::bytes(4), {}},
                                {"m", 40, ET::integer(2), {2, 2}}});
  std::vector<TypeCase> out = {
      {"bool", ET::boolean()},          {"i1", ET::integer(1)},         {"i2", ET::integer(2)},
      {"i4", ET::integer(4)},           {"i8", ET::integer(8)},         {"u1", ET::unsigned_integer(1)},
      {"u2", ET::unsigned_integer(2)},  {"u4", ET::unsigned_integer(4)}, {"u8", ET::unsigned_integer(8)},
      {"f2", ET::floating(2)},          {"f4", ET::floating(4)},        {"f8", ET::floating(8)},
      {"f16", ET::floating(16)},        {"c8", ET::complex(8)},         {"c16", ET::complex(16)},
      {"S7", ET::bytes(7)},             {"U5", ET::unicode(5)},         {"V6", ET::opaque(6)},
      {"compound", point},              {"nested", nested},             {">i4", ET::integer(4, kBig)},
      {">u8", ET::unsigned_integer(8, kBig)}, {">f2", ET::floating(2, kBig)}, {">f8", ET::floating(8, kBig)},
      {">c16", ET::complex(16, kBig)},  {">U3", ET::unicode(3, kBig)},
  };
  return out;
}

// Bytes that are valid values of the type: bools must be 0 or 1.
std::vector<std::byte> values_of(const ElementType& type, std::uint64_t n, std::uint32_t seed) {
  std::vector<std::byte> bytes = pattern_bytes(type.size * n, seed);
  if (type.kind == Kind::Bool) {
    for (auto& b : bytes) b &= std::byte{1};
  }
  if (type.kind == Kind::Compound) {  // the bool field of "point"
    for (const auto& f : type.fields) {
      if (f.type.kind != Kind::Bool) continue;
      for (std::uint64_t i = 0; i < n; ++i) bytes[i * type.size + f.offset] &= std::byte{1};
    }
  }
  return bytes;
}

TEST(ElementTypes, EveryTypeRoundTripsWithTypeAndShape) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const std::vector<TypeCase> cases = every_type();
  const std::vector<std::uint64_t> shape{3, 4};
  std::vector<std::vector<std::byte>> data;
  CheckpointWriter w(dir, 1, Comm::serial());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    data.push_back(values_of(cases[i].type, count_of(shape), static_cast<std::uint32_t>(i)));
    w.add_array(cases[i].label, view(data.back().data(), cases[i].type, shape));
  }
  w.commit();

  CheckpointReader r(tmp.path());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].label);
    const DatasetInfo info = r.dataset(0, cases[i].label);
    EXPECT_EQ(info.type, cases[i].type) << info.type.str() << " vs " << cases[i].type.str();
    EXPECT_EQ(info.shape, shape);
    EXPECT_EQ(info.order, StorageOrder::C);
    std::vector<std::byte> back(data[i].size());
    r.read_array(0, cases[i].label, dest(back.data(), cases[i].type, shape));
    EXPECT_EQ(back, data[i]);
  }
}

TEST(ElementTypes, ReadConvertsToAnotherNumericTypeAndByteOrder) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  std::vector<double> values{1.5, -2.25, 3e10, 0.0};
  std::vector<std::byte> big(values.size() * 8);
  for (std::size_t i = 0; i < values.size(); ++i) {
    std::uint64_t bits;
    std::memcpy(&bits, &values[i], 8);
    bits = __builtin_bswap64(bits);
    std::memcpy(big.data() + 8 * i, &bits, 8);
  }
  write_one(dir, 1, "big", view(big.data(), ElementType::floating(8, kBig), {4}));
  CheckpointReader r(tmp.path());
  std::vector<double> native(4);
  r.read_array(0, "big", dest(native.data(), ElementType::floating(8), {4}));
  EXPECT_EQ(native, values);
  std::vector<float> narrow(4);
  r.read_array(0, "big", dest(narrow.data(), ElementType::floating(4), {4}));
  EXPECT_FLOAT_EQ(narrow[1], -2.25f);
  std::vector<char> text(32);
  EXPECT_THROW(r.read_array(0, "big", dest(text.data(), ElementType::bytes(8), {4})), UsageError);
}

TEST(ElementTypes, UnicodeIsUint32WithATrailingDimension) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const std::u32string s = U"héllo" U"wörld";  // two 'U5' elements
  write_one(dir, 1, "u", view(s.data(), ElementType::unicode(5), {2}));
  CheckpointReader r(tmp.path());
  EXPECT_EQ(r.dataset(0, "u").type, ElementType::unicode(5));
  EXPECT_EQ(r.dataset(0, "u").shape, (std::vector<std::uint64_t>{2}));
  // What a third party sees: uint32 of shape (2, 5) marked unicode=5.
  hid_t f = H5Fopen(r.file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "/ranks/0/arrays/u", H5P_DEFAULT);
  hid_t sp = H5Dget_space(d);
  hsize_t dims[2];
  EXPECT_EQ(H5Sget_simple_extent_dims(sp, dims, nullptr), 2);
  EXPECT_EQ(dims[1], 5u);
  hid_t t = H5Dget_type(d);
  EXPECT_EQ(H5Tget_class(t), H5T_INTEGER);
  EXPECT_EQ(H5Tget_size(t), 4u);
  H5Tclose(t);
  H5Sclose(sp);
  H5Dclose(d);
  H5Fclose(f);
  std::u32string back(10, U'\0');
  r.read_array(0, "u", dest(back.data(), ElementType::unicode(5), {2}));
  EXPECT_EQ(back, s);
}

// ----------------------------------------------------------- layouts ---

TEST(Layouts, FortranOrderIsStoredReversedAndReadsIntoEitherOrder) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  // a[i][j] = 10 i + j, shape (3, 4), column-major.
  std::vector<std::int32_t> f(12);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) f[static_cast<std::size_t>(i + 3 * j)] = 10 * i + j;
  write_one(dir, 1, "a", view(f.data(), ElementType::integer(4), {3, 4}, {4, 12}));
  CheckpointReader r(tmp.path());
  const DatasetInfo info = r.dataset(0, "a");
  EXPECT_EQ(info.order, StorageOrder::F);
  EXPECT_EQ(info.shape, (std::vector<std::uint64_t>{3, 4}));
  std::vector<std::int32_t> back_f(12), back_c(12);
  r.read_array(0, "a", dest(back_f.data(), ElementType::integer(4), {3, 4}, {4, 12}));
  EXPECT_EQ(back_f, f);
  r.read_array(0, "a", dest(back_c.data(), ElementType::integer(4), {3, 4}));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(back_c[static_cast<std::size_t>(4 * i + j)], 10 * i + j);
}

TEST(Layouts, FortranOrderUnicode) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  // shape (2, 3) of 'U2', column-major: element (i, j) at i + 2 j.
  std::u32string f;
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 2; ++i) f += {static_cast<char32_t>(U'a' + i), static_cast<char32_t>(U'0' + j)};
  write_one(dir, 1, "u", view(f.data(), ElementType::unicode(2), {2, 3}, {8, 16}));
  CheckpointReader r(tmp.path());
  std::u32string c(12, U'\0');
  r.read_array(0, "u", dest(c.data(), ElementType::unicode(2), {2, 3}));
  EXPECT_EQ(c, U"a0a1a2b0b1b2");
}

TEST(Layouts, StridedNegativeAndZeroStridesAreStagedInPieces) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  std::vector<std::int64_t> base(6 * 8);
  for (std::size_t k = 0; k < base.size(); ++k) base[k] = static_cast<std::int64_t>(k);
  const ElementType i8 = ElementType::integer(8);
  // base[::2, ::-1]: rows 0, 2, 4, columns 7..0.
  const ArrayView odd = view(&base[7], i8, {3, 8}, {2 * 8 * 8, -8});
  // A broadcast row: base[1] repeated 5 times along a zero stride.
  const ArrayView bcast = view(&base[8], i8, {5, 8}, {0, 8});
  // base[::-1, 3] -- a negative-strided column.
  const ArrayView column = view(&base[5 * 8 + 3], i8, {6}, {-8 * 8});
  WriterOptions tiny;
  tiny.staging_bytes = 40;  // a few elements per piece: many pieces
  CheckpointWriter w(dir, 1, Comm::serial(), tiny);
  w.add_array("odd", odd);
  w.add_array("bcast", bcast);
  w.add_array("column", column);
  w.commit();

  CheckpointReader r(tmp.path());
  std::vector<std::int64_t> got(24);
  r.read_array(0, "odd", dest(got.data(), i8, {3, 8}));
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 8; ++j) EXPECT_EQ(got[8 * i + j], base[16 * i + 7 - j]);
  std::vector<std::int64_t> b(40);
  r.read_array(0, "bcast", dest(b.data(), i8, {5, 8}));
  for (std::size_t k = 0; k < 40; ++k) EXPECT_EQ(b[k], base[8 + k % 8]);
  std::vector<std::int64_t> col(6);
  r.read_array(0, "column", dest(col.data(), i8, {6}));
  for (std::size_t k = 0; k < 6; ++k) EXPECT_EQ(col[k], base[(5 - k) * 8 + 3]);
  // And reading into a strided destination: every other element.
  std::vector<std::int64_t> spread(12, -1);
  r.read_array(0, "column", dest(spread.data(), i8, {6}, {16}));
  for (std::size_t k = 0; k < 6; ++k) EXPECT_EQ(spread[2 * k], col[k]);
  EXPECT_EQ(spread[1], -1);
}

TEST(Layouts, ZeroDimensionalAndEmptyArrays) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const double scalar = 2.5;
  CheckpointWriter w(dir, 1, Comm::serial());
  w.add_array("scalar", view(&scalar, ElementType::floating(8), {}));
  w.add_array("empty", view(nullptr, ElementType::integer(4), {0, 5}));
  w.add_array("empty_u", view(nullptr, ElementType::unicode(3), {0}));
  w.add_blob("empty_blob", {});
  w.commit();
  CheckpointReader r(tmp.path());
  double back = 0;
  r.read_array(0, "scalar", dest(&back, ElementType::floating(8), {}));
  EXPECT_EQ(back, 2.5);
  EXPECT_TRUE(r.dataset(0, "scalar").shape.empty());
  EXPECT_EQ(r.dataset(0, "empty").shape, (std::vector<std::uint64_t>{0, 5}));
  r.read_array(0, "empty", dest(nullptr, ElementType::integer(4), {0, 5}));
  EXPECT_EQ(r.dataset(0, "empty_u").shape, (std::vector<std::uint64_t>{0}));
  EXPECT_TRUE(r.read_blob(0, "empty_blob").empty());
  for (const VerifyResult& v : r.verify()) EXPECT_TRUE(v.ok) << v.dataset << ": " << v.message;
}

TEST(Blobs, RoundTripWithAttributes) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const std::string pickle = std::string("\x80\x04\x95\x00", 4) + std::string(100000, 'x');
  CheckpointWriter w(dir, 1, Comm::serial());
  w.add_blob("pickle", as_bytes(pickle), {{"protocol", std::int64_t{5}}});
  w.commit();
  CheckpointReader r(tmp.path());
  const std::vector<std::byte> back = r.read_blob(0, "pickle");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(back.data()), back.size()), pickle);
  const DatasetInfo info = r.dataset(0, "pickle");
  EXPECT_EQ(info.kind, DatasetKind::Blob);
  EXPECT_EQ(info.attrs.at("protocol"), AttrValue(std::int64_t{5}));
  EXPECT_EQ(info.bytes, pickle.size());
}

// ------------------------------------------------- attributes and names ---

TEST(Metadata, AttributesOfEveryKind) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const AttrMap attrs{{"i", std::int64_t{-7}},
                      {"d", 0.125},
                      {"s", std::string("héllo")},
                      {"vi", std::vector<std::int64_t>{1, 2, 3}},
                      {"vd", std::vector<double>{}},
                      {"vs", std::vector<std::string>{"python3", "-m", "app"}}};
  const std::int32_t x = 1;
  CheckpointWriter w(dir, 7, Comm::serial());
  for (const auto& [k, v] : attrs) {
    w.set_attribute(k, v);
    w.set_rank_attribute(k, v);
  }
  w.add_array("x", view(&x, ElementType::integer(4), {}), attrs);
  EXPECT_THROW(w.set_attribute("epoch", std::int64_t{1}), UsageError);
  EXPECT_THROW(w.set_rank_attribute("seconds_write", 1.0), UsageError);  // the container's own
  EXPECT_THROW(w.add_array("y", view(&x, ElementType::integer(4), {}), {{"checksum", std::int64_t{1}}}), UsageError);
  w.commit();

  CheckpointReader r(tmp.path());
  EXPECT_EQ(r.epoch(), 7u);
  EXPECT_EQ(r.world_size(), 1);
  const AttrMap& root = r.attributes();
  EXPECT_EQ(root.at("format"), AttrValue(std::string("pyckpt-checkpoint")));
  EXPECT_EQ(root.at("format_version"), AttrValue(std::int64_t{2}));
  EXPECT_EQ(std::get<std::vector<std::string>>(root.at("hosts")).size(), 1u);
  EXPECT_TRUE(root.count("created_unix") && root.count("seconds_write") && root.count("byte_order"));
  // The rank's own timings; the root's are the slowest rank's, here the only one.
  const AttrMap& rank = r.rank_attributes(0);
  EXPECT_GT(std::get<double>(rank.at("seconds_write")), 0.0);
  EXPECT_EQ(rank.at("seconds_write"), root.at("seconds_write"));
  EXPECT_EQ(rank.at("seconds_prepare"), root.at("seconds_prepare"));
  for (const auto& [k, v] : attrs) {
    EXPECT_EQ(root.at(k), v) << k;
    EXPECT_EQ(r.rank_attributes(0).at(k), v) << k;
    EXPECT_EQ(r.dataset(0, "x").attrs.at(k), v) << k;
  }
  EXPECT_EQ(r.dataset(0, "x").attrs.size(), attrs.size());  // no format attributes
}

TEST(Metadata, NamesWithSlashesAndPercentAreEscaped) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const std::vector<std::string> names{"obj/3", "100%", ".hidden", "a.b", std::string("nul\0byte", 8), "ünï"};
  CheckpointWriter w(dir, 1, Comm::serial());
  for (const std::string& n : names) w.add_blob(n, as_bytes(n));
  EXPECT_THROW(w.add_blob("obj/3", {}), UsageError);
  EXPECT_THROW(w.add_blob("", {}), UsageError);
  w.commit();
  CheckpointReader r(tmp.path());
  std::vector<std::string> listed;
  for (const DatasetInfo& d : r.datasets(0)) listed.push_back(d.name);
  std::vector<std::string> expected = names;
  std::sort(listed.begin(), listed.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(listed, expected);
  for (const std::string& n : names) {
    const auto b = r.read_blob(0, n);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), n);
  }
  hid_t f = H5Fopen(r.file().c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  EXPECT_GT(H5Lexists(f, "/ranks/0/blobs/obj%2F3", H5P_DEFAULT), 0);
  EXPECT_GT(H5Lexists(f, "/ranks/0/blobs/%2Ehidden", H5P_DEFAULT), 0);
  H5Fclose(f);
}

// --------------------------------------------------------- global arrays ---

TEST(GlobalArrays, SingleWriterBoxesAndUnwrittenParts) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  std::vector<float> slab(4 * 6);
  for (std::size_t k = 0; k < slab.size(); ++k) slab[k] = static_cast<float>(k);
  CheckpointWriter w(dir, 1, Comm::serial());
  // Rows 2..5 of an (8, 6) array; rows 0, 1, 6, 7 are never written.
  w.add_global_slab("g", {8, 6}, {2, 0}, view(slab.data(), ElementType::floating(4), {4, 6}), {{"unit", std::string("m")}});
  w.commit();
  CheckpointReader r(tmp.path());
  const GlobalArrayInfo g = r.global_array("g");
  EXPECT_EQ(g.shape, (std::vector<std::uint64_t>{8, 6}));
  ASSERT_EQ(g.slabs.size(), 1u);
  EXPECT_EQ(g.slabs[0].offset, (std::vector<std::uint64_t>{2, 0}));
  EXPECT_EQ(g.attrs.at("unit"), AttrValue(std::string("m")));
  std::vector<double> box(3 * 2, -1);  // rows 1..3, cols 4..5, converted to f8
  r.read_global_slab("g", {1, 4}, {3, 2}, dest(box.data(), ElementType::floating(8), {3, 2}));
  EXPECT_EQ(box, (std::vector<double>{0, 0, 4, 5, 10, 11}));
}

// ------------------------------------------------------ commit protocol ---

TEST(Commit, LatestRetentionAndListing) {
  ScratchDir tmp;
  CheckpointDir dir(tmp / "ckpt", 2);
  EXPECT_EQ(dir.next_epoch(), 1u);
  EXPECT_FALSE(dir.latest());
  const std::int64_t v = 1;
  for (std::uint64_t e = 1; e <= 4; ++e) {
    const CommitInfo info = write_one(dir, e, "v", view(&v, ElementType::integer(8), {}));
    EXPECT_EQ(info.path, dir.file_for(e));
  }
  std::vector<CheckpointEntry> all = dir.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].epoch, 3u);
  EXPECT_EQ(all[1].epoch, 4u);
  EXPECT_TRUE(all[1].is_latest);
  EXPECT_EQ(fs::read_symlink(tmp / "ckpt/latest"), fs::path("ckpt.00000004.h5"));
  EXPECT_EQ(dir.next_epoch(), 5u);
  // An older epoch committed last becomes `latest` and survives retention.
  CheckpointDir keep1(tmp / "ckpt", 1);
  write_one(keep1, 2, "v", view(&v, ElementType::integer(8), {}));
  all = keep1.list();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].epoch, 2u);
  EXPECT_TRUE(all[0].is_latest);
  EXPECT_EQ(CheckpointReader(tmp / "ckpt").epoch(), 2u);
}

TEST(Dir, NamesOfTheDirectoryConventions) {
  EXPECT_STREQ(CheckpointDir::kDefaultDirectory, "pyckpt.d");
  CheckpointDir dir("/some/ckpt");
  EXPECT_EQ(dir.request_path(), fs::path("/some/ckpt/.request"));
  EXPECT_EQ(dir.latest_link(), fs::path("/some/ckpt/latest"));
  EXPECT_EQ(dir.in_flight_file_for(5), fs::path("/some/ckpt/ckpt.00000005.h5.tmp"));
  EXPECT_EQ(dir.writing_marker(12), fs::path("/some/ckpt/.writing.12"));
  EXPECT_EQ(CheckpointDir::parse_writing_marker(".writing.12"), std::optional<std::uint64_t>(12));
  EXPECT_EQ(CheckpointDir::parse_writing_marker(dir.writing_marker(7).filename().string()),
            std::optional<std::uint64_t>(7));
  for (const char* other : {".writing.", ".writing.x", ".writing.3a", "writing.3", ".request", "ckpt.00000001.h5"})
    EXPECT_FALSE(CheckpointDir::parse_writing_marker(other)) << other;
}

TEST(Dir, WritingMarkersAreListedByEpoch) {
  ScratchDir tmp;
  CheckpointDir dir(tmp / "ckpt");
  EXPECT_TRUE(dir.writing_markers().empty());  // no directory yet
  fs::create_directories(dir.path());
  for (std::uint64_t e : {10u, 9u}) std::ofstream(dir.writing_marker(e)) << 1234;
  std::ofstream(dir.path() / ".writing.junk") << 1;
  std::ofstream(dir.request_path()) << "";
  const auto markers = dir.writing_markers();
  ASSERT_EQ(markers.size(), 2u);
  EXPECT_EQ(markers[0].first, 9u);
  EXPECT_EQ(markers[0].second, dir.writing_marker(9));
  EXPECT_EQ(markers[1].first, 10u);
  EXPECT_TRUE(dir.list().empty());  // neither markers nor the request are checkpoints
  EXPECT_EQ(dir.next_epoch(), 1u);
}

TEST(Dir, WriterWithoutEpochWritesTheNextOne) {
  ScratchDir tmp;
  CheckpointDir dir(tmp / "ckpt");
  EXPECT_EQ(dir.next_epoch(Comm::serial()), 1u);
  const std::int64_t v = 3;
  for (std::uint64_t expected : {1u, 2u}) {
    CheckpointWriter w(dir, Comm::serial());
    EXPECT_EQ(w.epoch(), expected);
    w.add_array("v", view(&v, ElementType::integer(8), {}));
    const CommitInfo info = w.commit();
    EXPECT_EQ(info.epoch, expected);
    EXPECT_EQ(info.path, dir.file_for(expected));
  }
  write_one(dir, 7, "v", view(&v, ElementType::integer(8), {}));  // callers with their own numbering
  EXPECT_EQ(dir.next_epoch(Comm::serial()), 8u);
  EXPECT_EQ(CheckpointWriter(dir, Comm::serial()).epoch(), 8u);
}

TEST(Names, DatasetPathIsWhatTheFileHolds) {
  EXPECT_EQ(dataset_path(0, DatasetKind::Array, "u"), "/ranks/0/arrays/u");
  EXPECT_EQ(dataset_path(3, DatasetKind::Blob, ".a/b%c"), "/ranks/3/blobs/%2Ea%2Fb%25c");
  ScratchDir tmp;
  CheckpointDir dir(tmp / "ckpt");
  const std::int32_t v = 1;
  write_one(dir, 1, ".odd/name", view(&v, ElementType::integer(4), {}));
  const auto results = CheckpointReader(dir.path()).verify();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].dataset, dataset_path(0, DatasetKind::Array, ".odd/name"));
}

TEST(Commit, UnwritableDirectoryIsAnIoErrorNamingIt) {
  ScratchDir tmp;
  std::ofstream(tmp / "plain-file") << "x";
  CheckpointDir dir(tmp / "plain-file" / "ckpt");
  const std::int64_t v = 1;
  try {
    write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), (tmp / "plain-file" / "ckpt").string())) << e.what();
  }
}

TEST(Commit, ExistingUnwritableDirectoryIsAnIoErrorAndKeepsThePreviousCheckpoint) {
  // A directory that exists but refuses new files: a read-only mount (which
  // stops root too), or else a mode-0500 directory for a non-root user.
  ScratchDir tmp;
  const fs::path d = tmp / "ro";
  fs::create_directory(d);
  const bool mounted = ::mount("tmpfs", d.c_str(), "tmpfs", 0, "size=2m") == 0;
  struct Cleanup {
    fs::path p;
    bool mounted;
    ~Cleanup() {
      if (mounted) {
        ::umount2(p.c_str(), MNT_DETACH);
      } else {
        ::chmod(p.c_str(), 0755);
      }
    }
  } cleanup{d, mounted};
  CheckpointDir dir(d);
  const std::int64_t v = 42;
  write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));
  if (mounted) {
    if (::mount("tmpfs", d.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, "size=2m") != 0) {
      GTEST_SKIP() << "cannot remount read-only";
    }
  } else {
    if (::geteuid() == 0) GTEST_SKIP() << "root without mount: no directory is unwritable";
    ::chmod(d.c_str(), 0500);
  }
  try {
    write_one(dir, 2, "v", view(&v, ElementType::integer(8), {}));
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), d.string())) << e.what();
    EXPECT_TRUE(contains(e.what(), "ckpt.00000002.h5.tmp")) << e.what();
  }
  CheckpointReader r(d);
  EXPECT_EQ(r.epoch(), 1u);
  std::int64_t back = 0;
  r.read_array(0, "v", dest(&back, ElementType::integer(8), {}));
  EXPECT_EQ(back, 42);
}

TEST(Commit, DiskFullIsAnIoErrorAndKeepsThePreviousCheckpoint) {
  ScratchDir tmp;
  const fs::path mnt = tmp / "small";
  fs::create_directory(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};
  CheckpointDir dir(mnt);
  const std::int64_t v = 42;
  write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));
  const std::vector<std::byte> big(4 << 20, std::byte{7});
  try {
    write_one(dir, 2, "big", view(big.data(), ElementType::unsigned_integer(1), {big.size()}));
    FAIL() << "no exception";
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), "ckpt.00000002.h5.tmp")) << e.what();
    EXPECT_TRUE(contains(e.what(), "/ranks/0/arrays/big")) << e.what();
  }
  EXPECT_FALSE(fs::exists(mnt / "ckpt.00000002.h5.tmp"));
  CheckpointReader r(mnt);
  EXPECT_EQ(r.epoch(), 1u);
  std::int64_t back = 0;
  r.read_array(0, "v", dest(&back, ElementType::integer(8), {}));
  EXPECT_EQ(back, 42);
}

TEST(Commit, FileSizeLimitIsAnIoError) {
  // Where no tmpfs can be mounted, RLIMIT_FSIZE provokes the same kind of
  // write failure (EFBIG). In a child, so the limit does not leak.
  ScratchDir tmp;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{1 << 20, 1 << 20};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    const std::vector<std::byte> big(4 << 20, std::byte{7});
    try {
      write_one(CheckpointDir(tmp.path()), 1, "big", view(big.data(), ElementType::unsigned_integer(1), {big.size()}));
    } catch (const IoError& e) {
      ::_exit(contains(e.what(), "ckpt.00000001.h5.tmp") && !fs::exists(tmp / "ckpt.00000001.h5.tmp") ? 0 : 2);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(Commit, KilledWriterLeavesPreviousLatestIntact) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  const std::int64_t v = 1;
  write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));

  const std::size_t big_size = std::size_t{512} << 20;
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<std::byte> big(big_size, std::byte{1});
    write_one(dir, 2, "big", view(big.data(), ElementType::unsigned_integer(1), {big.size()}));
    ::_exit(0);
  }
  // Kill the writer once its data is on its way into the .tmp file: the file
  // size jumps when the dataset is allocated, its blocks fill as data lands.
  const fs::path partial = tmp / "ckpt.00000002.h5.tmp";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  const auto allocated = [&] {
    struct stat st {};
    return ::stat(partial.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_blocks) * 512 : 0;
  };
  while (std::chrono::steady_clock::now() < deadline && allocated() < (std::uint64_t{32} << 20)) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the writer finished before it could be killed";
  EXPECT_FALSE(fs::exists(dir.file_for(2)));

  CheckpointReader r(tmp.path());
  EXPECT_EQ(r.epoch(), 1u);
  for (const VerifyResult& res : r.verify()) EXPECT_TRUE(res.ok) << res.message;
  // The next commit of the same epoch replaces the partial file.
  write_one(dir, 2, "v", view(&v, ElementType::integer(8), {}));
  EXPECT_EQ(CheckpointReader(tmp.path()).epoch(), 2u);
  EXPECT_FALSE(fs::exists(partial));
}

// ------------------------------------------------------ damaged files ---

// Byte offset of a dataset's data in the file (contiguous layout).
std::uint64_t data_offset(const fs::path& file, const std::string& dataset) {
  hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  const haddr_t off = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return off;
}

void flip_byte(const fs::path& file, std::uint64_t offset) {
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(&c, 1);
}

TEST(Damage, FlippedByteIsAChecksumErrorNamingTheDataset) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  std::vector<double> a(1000, 1.0), b(1000, 2.0);
  CheckpointWriter w(dir, 1, Comm::serial());
  w.add_array("a", view(a.data(), ElementType::floating(8), {1000}));
  w.add_array("b", view(b.data(), ElementType::floating(8), {1000}));
  w.commit();
  const fs::path file = dir.file_for(1);
  flip_byte(file, data_offset(file, "/ranks/0/arrays/b") + 77);

  CheckpointReader r(tmp.path());
  std::vector<double> back(1000);
  r.read_array(0, "a", dest(back.data(), ElementType::floating(8), {1000}));
  try {
    r.read_array(0, "b", dest(back.data(), ElementType::floating(8), {1000}));
    FAIL() << "no exception";
  } catch (const ChecksumError& e) {
    EXPECT_TRUE(contains(e.what(), "/ranks/0/arrays/b")) << e.what();
    EXPECT_TRUE(contains(e.what(), file.string())) << e.what();
  }
  // Also through the staged path (conversion to f4).
  std::vector<float> narrow(1000);
  EXPECT_THROW(r.read_array(0, "b", dest(narrow.data(), ElementType::floating(4), {1000})), ChecksumError);
  int bad = 0;
  for (const VerifyResult& v : r.verify()) {
    if (!v.ok) {
      ++bad;
      EXPECT_EQ(v.dataset, "/ranks/0/arrays/b");
    }
  }
  EXPECT_EQ(bad, 1);
}

TEST(Damage, TruncatedFileIsAFormatError) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  std::vector<double> a(100000, 1.0);
  write_one(dir, 1, "a", view(a.data(), ElementType::floating(8), {a.size()}));
  const fs::path file = dir.file_for(1);
  for (std::uintmax_t size : {fs::file_size(file) / 2, std::uintmax_t{100}, std::uintmax_t{0}}) {
    fs::resize_file(file, size);
    try {
      CheckpointReader r(file);
      std::vector<double> back(a.size());
      r.read_array(0, "a", dest(back.data(), ElementType::floating(8), {a.size()}));
      FAIL() << "no exception at size " << size;
    } catch (const FormatError& e) {
      EXPECT_TRUE(contains(e.what(), file.string())) << e.what();
    }
  }
}

TEST(Damage, ForeignFilesAndEditedAttributesAreFormatErrors) {
  ScratchDir tmp;
  std::ofstream(tmp / "text.h5") << "not hdf5 at all";
  EXPECT_THROW(CheckpointReader(tmp / "text.h5"), FormatError);

  hid_t f = H5Fcreate((tmp / "foreign.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  H5Fclose(f);
  try {
    CheckpointReader r(tmp / "foreign.h5");
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_TRUE(contains(e.what(), "not a pyckpt checkpoint")) << e.what();
  }

  CheckpointDir dir(tmp / "d");
  const std::int64_t v = 1;
  write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));
  // An attribute changed in place: HDF5's metadata no longer matches the
  // digest in the header, and the file is refused before HDF5 parses it.
  f = H5Fopen(dir.file_for(1).c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
  const std::int64_t three = 3;
  H5Awrite(a, H5T_NATIVE_INT64, &three);
  H5Aclose(a);
  H5Fclose(f);
  try {
    CheckpointReader r(dir.path());
    FAIL();
  } catch (const AuthenticationError& e) {
    EXPECT_TRUE(contains(e.what(), "HDF5 metadata")) << e.what();
    EXPECT_TRUE(contains(e.what(), dir.file_for(1).string())) << e.what();
  }
}

TEST(Damage, MissingDirectoryOrCheckpoint) {
  ScratchDir tmp;
  try {
    CheckpointReader r(tmp / "nope");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_TRUE(contains(e.what(), (tmp / "nope").string())) << e.what();
  }
  EXPECT_THROW(CheckpointReader(tmp.path()), IoError);  // a directory without `latest`
  fs::create_symlink("ckpt.00000009.h5", tmp / "latest");
  EXPECT_THROW(CheckpointReader(tmp.path()), FormatError);  // `latest` dangles
  const std::int64_t v = 1;
  CheckpointDir dir(tmp.path());
  write_one(dir, 1, "v", view(&v, ElementType::integer(8), {}));
  CheckpointReader r(tmp.path());
  EXPECT_THROW(r.read_blob(0, "missing"), FormatError);
  EXPECT_THROW(r.datasets(3), UsageError);
  EXPECT_FALSE(r.has_dataset(0, "missing"));
  EXPECT_TRUE(r.has_dataset(0, "v"));
}

// ------------------------------------------------------ authentication ---

Key key_of(std::uint8_t fill) {
  const std::vector<std::byte> bytes(Key::kMinBytes, std::byte{fill});
  return Key::from_bytes(bytes, "key-" + std::to_string(fill));
}

TEST(Authentication, AnotherKeyIsRefusedAndTrustStillChecksIntegrity) {
  ScratchDir tmp;
  CheckpointDir dir(tmp.path());
  WriterOptions options;
  options.key = key_of(1);
  const std::int64_t v = 42;
  CheckpointWriter w(dir, 1, Comm::serial(), options);
  w.add_blob("state", std::as_bytes(std::span(&v, 1)));
  w.commit();

  ReaderOptions other;
  other.key = key_of(2);
  try {
    CheckpointReader r(tmp.path(), other);
    FAIL();
  } catch (const AuthenticationError& e) {
    EXPECT_TRUE(contains(e.what(), "written with another key (key id " + key_of(1).id())) << e.what();
  }
  const HeaderCheck check = check_header(tmp.path(), &other.key.value());
  EXPECT_EQ(check.authentication, Authentication::OtherKey);
  EXPECT_TRUE(check.intact);
  other.trust = true;
  EXPECT_EQ(CheckpointReader(tmp.path(), other).read_blob(0, "state").size(), sizeof v);
  ReaderOptions same;
  same.key = key_of(1);
  EXPECT_TRUE(CheckpointReader(tmp.path(), same).header().authenticated());
}

TEST(Authentication, KeyFileIsCreatedPrivateAndAnExposedOneIsRefused) {
  ScratchDir tmp;
  const mode_t old_mask = ::umask(022);
  const fs::path path = tmp / "config/pyckpt/key";
  const Key created = Key::load_or_create(path);
  ::umask(old_mask);
  EXPECT_EQ(created.id(), Key::load(path).id());
  EXPECT_EQ(Key::load_or_create(path).id(), created.id());  // created once
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(path.parent_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ::chmod(path.c_str(), 0644);
  try {
    Key::load(path);
    FAIL();
  } catch (const KeyFileError& e) {
    EXPECT_TRUE(contains(e.what(), "chmod 600")) << e.what();
  }
}

}  // namespace
}  // namespace pyckpt::h5::testing
