# Installs the build into PREFIX, then checks that the installed files stand alone: run paths are
# relative to the files ($ORIGIN), nothing installed names the build's lib folder, and the installed
# `tessera`, with TESSERA_PLUGIN_PATH and LD_LIBRARY_PATH unset, searches only PREFIX's plugin
# folder, lists every plugin from there, preprocesses a corpus and trains a few iterations.
# Arguments: BUILD PREFIX BINDIR LIBDIR DATADIR WORK CORPUS [READELF].
include(${CMAKE_CURRENT_LIST_DIR}/../run_checked.cmake)

function(require_contains text part why)
  string(FIND "${text}" "${part}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${why}: '${part}' not found in:\n${text}")
  endif()
endfunction()

function(require_absent text part why)
  string(FIND "${text}" "${part}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "${why}: '${part}' found in:\n${text}")
  endif()
endfunction()

file(REMOVE_RECURSE ${PREFIX} ${WORK})
file(MAKE_DIRECTORY ${WORK})
run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${PREFIX})
file(REAL_PATH ${PREFIX} prefix)
set(tessera ${prefix}/${BINDIR}/tessera)
set(plugin_dir ${prefix}/${LIBDIR}/tessera)
set(build_lib ${BUILD}/lib)  # where the build's core and plugins are: no installed file may point there

# The installed program runs as a user's would: nothing in the environment points at Tessera.
unset(ENV{TESSERA_PLUGIN_PATH})
unset(ENV{LD_LIBRARY_PATH})

file(GLOB plugins ${plugin_dir}/libtessera_*.so)
list(LENGTH plugins plugin_count)
if(plugin_count LESS 5)
  message(FATAL_ERROR "expected the 5 plugin libraries in ${plugin_dir}, found: ${plugins}")
endif()

# Run paths: $ORIGIN-relative entries only (readelf -d shows them; RUNPATH, from the linker's
# new dtags), and the loader resolves libtessera_core.so inside the prefix.
if(READELF)
  foreach(file ${tessera} ${plugins})
    run(${READELF} -d ${file})
    require_contains("${last_output}" "(RUNPATH)" "${file} has no RUNPATH")
    require_contains("${last_output}" "$ORIGIN" "${file}'s RUNPATH is not relative to the file")
    require_absent("${last_output}" "${BUILD}" "${file}'s run path names the build tree")
  endforeach()
else()
  message(STATUS "no readelf: run path entries not checked")
endif()
find_program(LDD ldd)
if(LDD)
  foreach(file ${tessera} ${plugin_dir}/libtessera_gpt.so)
    run(${LDD} ${file})
    string(REGEX MATCH "libtessera_core.so => ([^ \n]+)" found "${last_output}")
    if(found)
      file(REAL_PATH "${CMAKE_MATCH_1}" found)
    endif()
    if(NOT found STREQUAL "${prefix}/${LIBDIR}/libtessera_core.so")
      message(FATAL_ERROR "${file} does not find the installed libtessera_core.so:\n${last_output}")
    endif()
  endforeach()
endif()
foreach(file ${tessera} ${prefix}/${LIBDIR}/libtessera_core.so ${plugins})
  file(STRINGS ${file} strings REGEX "/lib")
  require_absent("${strings}" "${build_lib}" "${file} names the build's lib folder")
endforeach()

# The plugin search path is the prefix's plugin folder only, and every plugin is listed from it.
run(${tessera} plugins)
set(listing "${last_output}")
require_absent("${listing}" "${build_lib}" "the installed tessera looks in the build tree")
string(REGEX MATCH "Plugin search path[^\n]*\n  ([^\n]*)\n\n" search "${listing}")
if(NOT CMAKE_MATCH_1 STREQUAL plugin_dir)
  message(FATAL_ERROR "expected the search path to be ${plugin_dir} only:\n${listing}")
endif()
foreach(entry "model gpt" "optimizer adam" "optimizer distributed_adam" "data gpt_indexed" "schedule 1f1b"
              "schedule interleaved")
  string(REPLACE " " ";" entry "${entry}")
  list(GET entry 0 kind)
  list(GET entry 1 name)
  string(REGEX MATCH "\n  ${kind} +${name} +([^\n]*)" line "${listing}")
  if(NOT line)
    message(FATAL_ERROR "${kind} plugin '${name}' is not listed:\n${listing}")
  endif()
  string(FIND "${CMAKE_MATCH_1}" "${plugin_dir}/" at)
  if(NOT at EQUAL 0)
    message(FATAL_ERROR "${kind} plugin '${name}' comes from ${CMAKE_MATCH_1}, not from ${plugin_dir}")
  endif()
endforeach()

# tessera bench's PyTorch baseline travels with the program.
if(DATADIR AND NOT EXISTS ${prefix}/${DATADIR}/tessera/benchmarks/pytorch_gpt.py)
  message(FATAL_ERROR "benchmarks/pytorch_gpt.py is not installed under ${prefix}/${DATADIR}/tessera")
endif()

# A tiny run from the installed program: byte tokens of some of Tessera's sources.
run(${tessera} preprocess --no-progress --tokenizer byte --input ${CORPUS} --output-prefix ${WORK}/corpus)
file(WRITE ${WORK}/run.toml "[model]
plugin = \"gpt\"
num_layers = 1
hidden_size = 32
num_attention_heads = 2
seq_length = 32
[tokenizer]
plugin = \"byte\"
[data]
plugin = \"gpt_indexed\"
data_path = \"${WORK}/corpus\"
split = \"100,0,0\"
[training]
micro_batch_size = 2
global_batch_size = 4
train_iters = 3
[optimizer]
plugin = \"adam\"
lr = 3e-3
")
run(${tessera} train ${WORK}/run.toml)
require_contains("${last_output}" "run summary" "the installed tessera did not finish training")
require_absent("${last_output}" "${build_lib}" "the installed tessera used the build tree")
