// Searches a gallery through the installed siamese::faiss target.
#include <siamese/faiss_index.hpp>
#include <siamese/gallery.hpp>

#include <iostream>

int main() {
  siamese::Gallery gallery("m", 4);
  gallery.set_index(std::make_unique<siamese::FaissIndex>(siamese::FaissIndexOptions{siamese::FaissKind::flat}));
  gallery.enroll("ann", torch::zeros({4}));
  gallery.enroll("bob", torch::ones({4}));
  const auto best = gallery.identify(torch::full({4}, 0.9F), 1, 1.0)[0].best();
  std::cout << gallery.index_description() << ": " << best.value_or("nobody known") << '\n';
  return best == "bob" ? 0 : 1;
}
