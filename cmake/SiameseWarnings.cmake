# Private helper target for the project's own binaries (tests, examples): warnings as errors and
# optional sanitizers. Never linked into the exported siamese target.
add_library(siamese_project_options INTERFACE)
target_link_libraries(siamese_project_options INTERFACE siamese::siamese)
target_compile_options(siamese_project_options INTERFACE -Wall -Wextra -Werror)
if(SIAMESE_SANITIZE)
  target_compile_options(siamese_project_options INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(siamese_project_options INTERFACE -fsanitize=address,undefined)
  # GCC 12 reports false maybe-uninitialized warnings inside libstdc++ (std::regex,
  # std::function) when sanitizers are on.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(siamese_project_options INTERFACE -Wno-maybe-uninitialized)
  endif()
endif()
