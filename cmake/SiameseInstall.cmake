include(CMakePackageConfigHelpers)

set(SIAMESE_CONFIG_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/siamese")

install(TARGETS siamese EXPORT siameseTargets)
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/siamese" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(EXPORT siameseTargets NAMESPACE siamese:: DESTINATION "${SIAMESE_CONFIG_DIR}")
if(TARGET siamese_faiss)
  install(TARGETS siamese_faiss EXPORT siameseFaissTargets)
  install(EXPORT siameseFaissTargets NAMESPACE siamese:: DESTINATION "${SIAMESE_CONFIG_DIR}")
endif()

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/siameseConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/siameseConfig.cmake"
  INSTALL_DESTINATION "${SIAMESE_CONFIG_DIR}")
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/siameseConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES
  "${PROJECT_BINARY_DIR}/siameseConfig.cmake"
  "${PROJECT_BINARY_DIR}/siameseConfigVersion.cmake"
  DESTINATION "${SIAMESE_CONFIG_DIR}")
