# Configure + build the example plugin against the build tree, then check that `tessera plugins`
# lists it and that a run with [optimizer] plugin = "sgd" trains; its checkpoint reshards through the
# plugin's optimizer_state format (to tp 2 and back) and resumes.
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
# Resharding through the example's state format: tp 1 -> tp 2 -> tp 1, then resumed for a 4th iteration.
run(${TESSERA} train ${CONFIG} --set data.data_path=${WORK}/corpus --set checkpoint.save=${WORK}/ckpt
    --set checkpoint.save_interval=3 --set optimizer.lr_decay_iters=4)
run(${TESSERA} checkpoint reshard ${WORK}/ckpt --tp 2 --set model.make_vocab_size_divisible_by=64 ${WORK}/tp2)
if(NOT EXISTS ${WORK}/tp2/iter_0000003/optimizer_tp1_pp0_dp0.safetensors)
  message(FATAL_ERROR "reshard to tp 2 wrote no optimizer file for tp rank 1:\n${last_output}")
endif()
run(${TESSERA} checkpoint reshard ${WORK}/tp2 --tp 1 --set model.make_vocab_size_divisible_by=128 ${WORK}/tp1)
run(${TESSERA} train ${CONFIG} --set data.data_path=${WORK}/corpus --set checkpoint.load=${WORK}/tp1
    --set training.train_iters=4 --set optimizer.lr_decay_iters=4)
if(NOT last_output MATCHES "resumed from checkpoint" OR NOT last_output MATCHES "iteration +4/")
  message(FATAL_ERROR "the resharded sgd checkpoint did not resume:\n${last_output}")
endif()
