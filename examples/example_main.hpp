#pragma once

// What every example shares: its command line parsed by CLI11, the exit-code convention
// (0 done, 1 error, 2 bad arguments with the usage printed, 3 no face found), and progress
// on standard error.

#include <siamese/siamese.hpp>

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

namespace example {

inline constexpr const char* exit_codes = "Exit codes: 0 done, 1 error, 2 bad arguments, 3 no face found.\n";

/// Gives `app` the examples' conventions: help shows defaults, a parse error shows the usage,
/// the exit codes are in the footer.
inline void configure(CLI::App& app) {
  app.option_defaults()->always_capture_default();
  app.failure_message(CLI::FailureMessage::help);
  app.footer(exit_codes);
}

/// Parses the command line with `app`, then returns `run()`, turning exceptions into messages
/// on standard error and exit codes: --help 0, bad arguments 2, NoFaceFound 3, any other error 1.
template <class Run>
int run_main(CLI::App& app, int argc, char** argv, Run run) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == static_cast<int>(CLI::ExitCodes::Success) ? 0 : 2;
  }
  try {
    return run();
  } catch (const siamese::NoFaceFound& e) {
    std::cerr << app.get_name() << ": " << e.what() << '\n';
    return 3;
  } catch (const std::exception& e) {
    std::cerr << app.get_name() << ": " << e.what() << '\n';
    return 1;
  }
}

}  // namespace example
