# Installs the build tree into PREFIX, then builds the proof of concept's first example
# against the installed copy twice - once with pkg-config, once with find_package - and
# runs both. Expects: BUILD_DIR, PREFIX, SOURCE_DIR, C_COMPILER.
function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "failed: ${ARGN}\n${out}\n${err}")
    endif()
    set(run_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${PREFIX})
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX})
foreach(name talloc.h)
    file(GLOB_RECURSE found ${PREFIX}/include/*/${name})
    if(NOT found MATCHES "/include/tallocator/talloc.h$")
        message(FATAL_ERROR "header not installed under include/tallocator: ${found}")
    endif()
endforeach()

file(GLOB_RECURSE pc_file ${PREFIX}/*/tallocator.pc)
get_filename_component(pc_dir "${pc_file}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
run(pkg-config --cflags --libs --static tallocator)
separate_arguments(flags UNIX_COMMAND "${run_output}")
run(${C_COMPILER} ${SOURCE_DIR}/tests/seed/seed_example_reverse.c ${flags} -o ${PREFIX}/via-pkg-config)
run(${PREFIX}/via-pkg-config)
if(NOT run_output STREQUAL "9 8 7 6 5 4 3 2 1 0 \n")
    message(FATAL_ERROR "pkg-config build printed: ${run_output}")
endif()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install/consumer -B ${PREFIX}/consumer-build
    -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_C_COMPILER=${C_COMPILER})
run(${CMAKE_COMMAND} --build ${PREFIX}/consumer-build)
run(${PREFIX}/consumer-build/consumer)
if(NOT run_output STREQUAL "9 8 7 6 5 4 3 2 1 0 \n")
    message(FATAL_ERROR "find_package build printed: ${run_output}")
endif()

# The installed drop-in malloc serves a program through LD_PRELOAD, and the static archive
# is installed beside it.
file(GLOB_RECURSE preload ${PREFIX}/*/libtallocator-malloc.so)
file(GLOB_RECURSE archive ${PREFIX}/*/libtallocator-malloc.a)
if(NOT preload OR NOT archive)
    message(FATAL_ERROR "libtallocator-malloc.so/.a not installed: '${preload}' '${archive}'")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env LD_PRELOAD=${preload} TALLOC_OPTIONS=stats=1
                        ${PREFIX}/via-pkg-config
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "9 8 7 6 5 4 3 2 1 0 \n"
   OR NOT err MATCHES "talloc:   allocations [1-9]" OR NOT err MATCHES "\\(unchanged\\)")
    message(FATAL_ERROR "LD_PRELOAD of the installed library: ${rc}\n${out}\n${err}")
endif()
message(STATUS "installed TAlloc works through pkg-config, find_package and LD_PRELOAD")
