# cmake -P script: install siamese into WORK_DIR/prefix, then configure, build and run the
# consumer project against that prefix only.
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE code)
  if(NOT code EQUAL 0)
    message(FATAL_ERROR "failed (${code}): ${ARGN}")
  endif()
endfunction()

run(${CMAKE_COMMAND} -S "${SIAMESE_SOURCE_DIR}" -B "${WORK_DIR}/lib" -G "${GENERATOR}"
    -DSIAMESE_BUILD_TESTS=OFF -DSIAMESE_BUILD_EXAMPLES=OFF -DSIAMESE_INSTALL=ON
    -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --install "${WORK_DIR}/lib")
if(NOT EXISTS "${prefix}/include/siamese/siamese.hpp")
  message(FATAL_ERROR "headers were not installed under ${prefix}")
endif()
run(${CMAKE_COMMAND} -S "${SIAMESE_SOURCE_DIR}/tests/consumer" -B "${WORK_DIR}/consumer"
    -G "${GENERATOR}" -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer")
run("${WORK_DIR}/consumer/consumer")
# The core alone: found with COMPONENTS core, built with no OpenCV on its include path.
run(${CMAKE_COMMAND} -S "${SIAMESE_SOURCE_DIR}/tests/consumer_core" -B "${WORK_DIR}/consumer_core"
    -G "${GENERATOR}" -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer_core")
run("${WORK_DIR}/consumer_core/core_consumer")
# Installed with siamese::faiss: the consumer must have built and must run its FAISS program.
file(GLOB_RECURSE faiss_exports "${prefix}/siameseFaissTargets.cmake")
if(faiss_exports)
  run("${WORK_DIR}/consumer/consumer_faiss")
endif()
