// Writes checkpoint epoch 1 of a serial program into argv[1]: one array "x".
#include <pyckpt/h5/container.hpp>

#include <cstdio>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  std::vector<double> x(100);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 0.5 * static_cast<double>(i);
  pyckpt::h5::CheckpointDir dir(argv[1]);
  pyckpt::h5::CheckpointWriter writer(dir, 1, pyckpt::h5::Comm::serial());
  writer.add_array("x", {x.data(), pyckpt::h5::ElementType::floating(8), {x.size()}, {}});
  std::printf("%s\n", writer.commit().path.c_str());
  return 0;
}
