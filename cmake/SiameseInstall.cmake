include(CMakePackageConfigHelpers)

set(SIAMESE_CONFIG_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/siamese")

# One export set per layer, so that siameseConfig.cmake finds only the packages of the
# components asked for.
foreach(layer IN ITEMS core vision gallery siamese faiss)
  set(target siamese_${layer})
  if(layer STREQUAL "siamese")
    set(target siamese)
  endif()
  if(TARGET ${target})
    string(SUBSTRING ${layer} 0 1 first)
    string(TOUPPER ${first} first)
    string(SUBSTRING ${layer} 1 -1 rest)
    set(export_set siamese${first}${rest}Targets)
    install(TARGETS ${target} EXPORT ${export_set})
    install(EXPORT ${export_set} NAMESPACE siamese:: DESTINATION "${SIAMESE_CONFIG_DIR}")
  endif()
endforeach()
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/siamese" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

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
