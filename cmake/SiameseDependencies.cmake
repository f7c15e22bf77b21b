# The packages the library needs, found the same way here and in siameseConfig.cmake.
include(GNUInstallDirs)
find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs objdetect)
find_package(nlohmann_json 3.9 REQUIRED)
# Galleries are stored in SQLite databases (siamese/gallery_store.hpp). Debian: libsqlite3-dev.
find_package(SQLite3 REQUIRED)
set(SIAMESE_OPENCV_TARGETS opencv_core opencv_imgproc opencv_imgcodecs opencv_objdetect)
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
