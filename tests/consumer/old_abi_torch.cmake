# cmake -P script: configures siamese against a stand-in LibTorch whose TorchConfig.cmake says
# _GLIBCXX_USE_CXX11_ABI=0, as many Python torch wheels' do, and checks that configure says
# which layers link (core and gallery) and defines no siamese::vision.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/torch")
file(WRITE "${WORK_DIR}/torch/TorchConfig.cmake" [=[
set(Torch_FOUND TRUE)
set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")
add_library(torch INTERFACE IMPORTED)
set_property(TARGET torch PROPERTY INTERFACE_COMPILE_OPTIONS "${TORCH_CXX_FLAGS}")
]=])
file(WRITE "${WORK_DIR}/project/CMakeLists.txt" [=[
cmake_minimum_required(VERSION 3.16)
project(old_abi LANGUAGES CXX)
add_subdirectory(${SIAMESE_SOURCE_DIR} siamese)
foreach(target siamese::core siamese::gallery siamese::vision siamese::siamese)
  if(TARGET ${target})
    message(STATUS "layer defined: ${target}")
  endif()
endforeach()
]=])
execute_process(
  COMMAND ${CMAKE_COMMAND} -S "${WORK_DIR}/project" -B "${WORK_DIR}/build" -G "${GENERATOR}"
          -DTorch_DIR=${WORK_DIR}/torch -DSIAMESE_SOURCE_DIR=${SIAMESE_SOURCE_DIR}
  RESULT_VARIABLE code OUTPUT_VARIABLE output ERROR_VARIABLE errors)
if(NOT code EQUAL 0)
  message(FATAL_ERROR "configure failed (${code}):\n${output}\n${errors}")
endif()
foreach(expected "_GLIBCXX_USE_CXX11_ABI=0: only siamese::core" "layer defined: siamese::core"
                 "layer defined: siamese::gallery")
  string(FIND "${output}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "configure did not say '${expected}':\n${output}")
  endif()
endforeach()
foreach(unexpected "layer defined: siamese::vision" "layer defined: siamese::siamese")
  string(FIND "${output}" "${unexpected}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "an old-ABI LibTorch still got '${unexpected}':\n${output}")
  endif()
endforeach()
message(STATUS "old-ABI LibTorch: core and gallery only, and configure says so")
