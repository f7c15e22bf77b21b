# The packages the library needs, found the same way here and in siameseConfig.cmake.
# siamese::core needs LibTorch and nlohmann_json; siamese::vision adds OpenCV, siamese::gallery
# SQLite (and libpq where found). A missing OpenCV or SQLite drops only the layers that need it.
include(GNUInstallDirs)
# A parent project may supply the `torch` target and nlohmann_json::nlohmann_json itself
# (tests/gpu does: a Python torch's files as they lie, and nlohmann's single header).
if(NOT TARGET torch)
  find_package(Torch REQUIRED)
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json 3.9 REQUIRED)
endif()

# A LibTorch built with the pre-C++11 string ABI (the one inside many Python torch wheels)
# cannot share std::string or std::vector with a C++ library built the usual way, such as
# Debian's OpenCV: only the layers without one link against it.
set(SIAMESE_TORCH_OLD_ABI OFF)
if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
  set(SIAMESE_TORCH_OLD_ABI ON)
endif()

set(SIAMESE_OPENCV_TARGETS opencv_core opencv_imgproc opencv_imgcodecs opencv_objdetect opencv_calib3d opencv_videoio)
set(SIAMESE_HAS_VISION OFF)
if(SIAMESE_TORCH_OLD_ABI)
  message(STATUS "siamese: the LibTorch found is built with _GLIBCXX_USE_CXX11_ABI=0: only siamese::core "
                 "and siamese::gallery link with it; siamese::vision and siamese::siamese need a LibTorch of the "
                 "C++11 ABI (the cxx11-abi archive from pytorch.org, or Debian's libtorch-dev)")
else()
  find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs objdetect calib3d videoio)
  if(OpenCV_FOUND)
    set(SIAMESE_HAS_VISION ON)
  else()
    message(STATUS "siamese: OpenCV not found: no siamese::vision or siamese::siamese (Debian: libopencv-dev)")
  endif()
endif()

# Galleries are stored in SQLite databases (siamese/gallery_store.hpp). Debian: libsqlite3-dev.
find_package(SQLite3 QUIET)
set(SIAMESE_HAS_GALLERY ${SQLite3_FOUND})
if(NOT SQLite3_FOUND)
  message(STATUS "siamese: SQLite3 not found: no siamese::gallery or siamese::siamese (Debian: libsqlite3-dev)")
endif()

# Optional: libpq, for galleries on a PostgreSQL server (siamese/postgres_gallery_store.hpp).
# Debian: libpq-dev. Where it is found, siamese::gallery links it and defines SIAMESE_WITH_POSTGRES,
# so that every program using the layer sees the same gallery_database.hpp.
set(SIAMESE_HAS_POSTGRES OFF)
if(SIAMESE_HAS_GALLERY)
  find_package(PostgreSQL QUIET)
  if(PostgreSQL_FOUND)
    set(SIAMESE_HAS_POSTGRES ON)
  else()
    message(STATUS "siamese: libpq not found: galleries in SQLite files only, no PostgreSQL server (Debian: libpq-dev)")
  endif()
endif()

# Optional: FAISS for galleries of millions (siamese/faiss_index.hpp, target siamese::faiss).
# Debian's FAISS config links OpenMP::OpenMP_CXX without finding it: find it first.
find_package(OpenMP QUIET)
if(OpenMP_CXX_FOUND)
  find_package(faiss CONFIG QUIET)
endif()

# Imported targets are visible only in the directory that found them. When siamese is added
# with add_subdirectory() or FetchContent, make them global so that the parent project can
# link siamese::siamese without finding Torch and OpenCV again.
if(NOT SIAMESE_IS_TOP_LEVEL AND CMAKE_VERSION VERSION_GREATER_EQUAL 3.21)
  get_directory_property(siamese_imported_targets IMPORTED_TARGETS)
  foreach(target IN LISTS siamese_imported_targets)
    get_target_property(already_global ${target} IMPORTED_GLOBAL)
    if(NOT already_global)
      set_target_properties(${target} PROPERTIES IMPORTED_GLOBAL TRUE)
    endif()
  endforeach()
endif()
