#pragma once

// What every example shares: reading flags, and the exit-code convention
// (0 done, 1 error, 2 bad arguments with the usage printed, 3 no face found).

#include <siamese/siamese.hpp>

#include <iostream>
#include <stdexcept>
#include <string>

namespace example {

/// Walks argv; value() takes the argument after a flag or says which flag lacks one.
class Flags {
 public:
  Flags(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() { return ++index_ < argc_; }
  std::string arg() const { return argv_[index_]; }
  std::string value() {
    if (index_ + 1 >= argc_) throw std::invalid_argument(arg() + " needs a value");
    return argv_[++index_];
  }

 private:
  int argc_;
  char** argv_;
  int index_ = 0;
};

/// Parses with `parse(argc, argv)` (std::invalid_argument or out_of_range, as std::stoi
/// throws them, for bad arguments), then returns
/// `run(arguments)`, turning exceptions into messages and exit codes.
template <class Parse, class Run>
int main_with_usage(const char* program, const char* usage, int argc, char** argv, Parse parse, Run run) {
  decltype(parse(argc, argv)) arguments;
  try {
    arguments = parse(argc, argv);
  } catch (const std::logic_error& e) {
    std::cerr << program << ": bad arguments: " << e.what() << '\n' << usage;
    return 2;
  }
  try {
    return run(arguments);
  } catch (const siamese::NoFaceFound& e) {
    std::cerr << program << ": " << e.what() << '\n';
    return 3;
  } catch (const std::exception& e) {
    std::cerr << program << ": " << e.what() << '\n';
    return 1;
  }
}

}  // namespace example
