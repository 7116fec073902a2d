# Configure + build the example plugin against the build tree, then check that `tessera plugins`
# lists it and that a run with [optimizer] plugin = "sgd" trains.
include(${CMAKE_CURRENT_LIST_DIR}/../run_checked.cmake)

file(REMOVE_RECURSE ${WORK})
run(${CMAKE_COMMAND} -S ${SOURCE} -B ${WORK} -G ${GENERATOR} -DTessera_DIR=${TESSERA_DIR} -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK})
set(ENV{TESSERA_PLUGIN_PATH} ${WORK})
run(${TESSERA} plugins --kind optimizer)
if(NOT last_output MATCHES "sgd")
  message(FATAL_ERROR "tessera plugins does not list the out-of-tree sgd plugin:\n${last_output}")
endif()
run(${TESSERA} preprocess --input ${SOURCE} --tokenizer byte --output-prefix ${WORK}/corpus --no-progress)
run(${TESSERA} train ${CONFIG} --set data.data_path=${WORK}/corpus)
if(NOT last_output MATCHES "SGD \\(momentum 0.5\\)" OR NOT last_output MATCHES "run summary")
  message(FATAL_ERROR "the run did not use the sgd plugin:\n${last_output}")
endif()
